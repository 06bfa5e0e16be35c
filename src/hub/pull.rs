//! The pull queue: events waiting for `Принять` / `ПолучитьСобытие`, in arrival order, plus
//! what `ПринятьОт` (one connection's next message) needs to find a message without a scan.
//!
//! Why tombstones and a lazy index: `ПринятьОт` takes a message from the middle of the
//! queue. Removing it from a `VecDeque` there would move up to the whole queue, and finding
//! it would scan it (10,000 events of other connections may be waiting). Instead each
//! connection keeps the arrival numbers of its queued messages (the index), the slot is found
//! by binary search (the queue is sorted by arrival number) and emptied in place (a
//! tombstone), which `Принять` later passes over. The index is built at the first
//! `ПринятьОт` (one scan) and kept from then on, so objects that never call it pay nothing
//! per message. Tombstones are bounded: once they are the majority of the slots, the queue
//! is compacted (linear, but amortised over as many takes as it removes).

use std::collections::{HashMap, VecDeque};

use super::Queued;

/// Compact when at least this many tombstones make up more than half of the slots.
const COMPACT_AT: usize = 64;

/// One slot: an event, or the tombstone of one `ПринятьОт` took.
#[derive(Debug)]
struct Slot {
    seq: u64,
    ev: Option<crate::event::Event>,
}

/// The pull queue (see the module docs).
#[derive(Debug, Default)]
pub(super) struct PullQueue {
    /// Slots by arrival number, ascending.
    slots: VecDeque<Slot>,
    /// Tombstones in `slots`.
    taken: usize,
    /// Per connection, the arrival numbers of its messages in `slots`, ascending; built at
    /// the first [`PullQueue::take_from`].
    index: Option<HashMap<u64, VecDeque<u64>>>,
}

/// The connection a queued event is indexed under: only a server connection's messages.
fn indexed(q: &Queued) -> Option<u64> {
    q.ev.conn.filter(|_| q.ev.is_message())
}

impl PullQueue {
    /// Events waiting.
    pub(super) fn len(&self) -> usize {
        self.slots.len() - self.taken
    }

    /// Appends an event that arrived last.
    pub(super) fn push_back(&mut self, q: Queued) {
        if let (Some(index), Some(c)) = (&mut self.index, indexed(&q)) {
            index.entry(c).or_default().push_back(q.seq);
        }
        self.slots.push_back(Slot {
            seq: q.seq,
            ev: Some(q.ev),
        });
    }

    /// Puts back an event at its place in arrival order (one the platform refused).
    pub(super) fn insert(&mut self, q: Queued) {
        if let (Some(index), Some(c)) = (&mut self.index, indexed(&q)) {
            let seqs = index.entry(c).or_default();
            let at = seqs.partition_point(|s| *s < q.seq);
            seqs.insert(at, q.seq);
        }
        let at = self.slots.partition_point(|s| s.seq < q.seq);
        self.slots.insert(
            at,
            Slot {
                seq: q.seq,
                ev: Some(q.ev),
            },
        );
    }

    /// Takes the oldest event, passing over tombstones.
    pub(super) fn pop_front(&mut self) -> Option<Queued> {
        while let Some(slot) = self.slots.pop_front() {
            let Some(ev) = slot.ev else {
                self.taken -= 1;
                continue;
            };
            let q = Queued { seq: slot.seq, ev };
            if let (Some(index), Some(c)) = (&mut self.index, indexed(&q)) {
                forget(index, c, q.seq);
            }
            return Some(q);
        }
        None
    }

    /// Takes the oldest message of connection `conn`; other events stay where they are.
    pub(super) fn take_from(&mut self, conn: u64) -> Option<Queued> {
        let index = self.index.get_or_insert_with(|| {
            let mut index: HashMap<u64, VecDeque<u64>> = HashMap::new();
            for s in &self.slots {
                if let Some(ev) = &s.ev
                    && let Some(c) = ev.conn
                    && ev.is_message()
                {
                    index.entry(c).or_default().push_back(s.seq);
                }
            }
            index
        });
        let seqs = index.get_mut(&conn)?;
        let seq = seqs.pop_front()?;
        if seqs.is_empty() {
            index.remove(&conn);
        }
        let at = self.slots.binary_search_by_key(&seq, |s| s.seq).ok()?;
        let ev = self.slots[at].ev.take()?;
        self.taken += 1;
        // Tombstones at the front are of no use to anyone.
        while self.slots.front().is_some_and(|s| s.ev.is_none()) {
            self.slots.pop_front();
            self.taken -= 1;
        }
        if self.taken >= COMPACT_AT && self.taken * 2 > self.slots.len() {
            self.slots.retain(|s| s.ev.is_some());
            self.taken = 0;
        }
        Some(Queued { seq, ev })
    }

    /// Takes every event out (the auto mode leaving the replay window for pushing); returns
    /// how many there were.
    pub(super) fn clear(&mut self) -> usize {
        let n = self.len();
        self.slots.clear();
        self.taken = 0;
        if let Some(index) = &mut self.index {
            index.clear();
        }
        n
    }
}

/// Removes `seq`, the oldest queued message of `conn`, from the index.
fn forget(index: &mut HashMap<u64, VecDeque<u64>>, conn: u64, seq: u64) {
    if let Some(seqs) = index.get_mut(&conn) {
        debug_assert_eq!(seqs.front(), Some(&seq), "the index follows arrival order");
        seqs.pop_front();
        if seqs.is_empty() {
            index.remove(&conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};

    fn msg(seq: u64, conn: u64) -> Queued {
        Queued {
            seq,
            ev: Event {
                conn: Some(conn),
                kind: EventKind::Text(format!("{conn}:{seq}")),
            },
        }
    }

    fn text(q: Option<Queued>) -> String {
        match q.map(|q| q.ev.kind) {
            Some(EventKind::Text(t)) => t,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn take_from_leaves_others_in_order() {
        let mut p = PullQueue::default();
        for seq in 0..10 {
            p.push_back(msg(seq, 1 + seq % 2));
        }
        assert_eq!(text(p.take_from(2)), "2:1");
        assert_eq!(text(p.take_from(2)), "2:3");
        assert_eq!(p.len(), 8);
        // Messages of connection 2 arriving after the index exists are found too.
        p.push_back(msg(10, 2));
        assert_eq!(text(p.pop_front()), "1:0");
        assert_eq!(text(p.pop_front()), "1:2");
        assert_eq!(text(p.pop_front()), "1:4");
        assert_eq!(text(p.pop_front()), "2:5");
        assert_eq!(text(p.take_from(2)), "2:7");
        assert_eq!(text(p.take_from(2)), "2:9");
        assert_eq!(text(p.take_from(2)), "2:10");
        assert!(p.take_from(2).is_none());
        assert!(p.take_from(3).is_none());
        assert_eq!(p.len(), 2);
        assert_eq!(text(p.pop_front()), "1:6");
        assert_eq!(text(p.pop_front()), "1:8");
        assert!(p.pop_front().is_none());
        assert_eq!((p.len(), p.taken, p.slots.len()), (0, 0, 0));
    }

    #[test]
    fn refused_events_come_back_into_the_index_in_order() {
        let mut p = PullQueue::default();
        p.push_back(msg(1, 1));
        p.push_back(msg(4, 1));
        assert!(p.take_from(9).is_none(), "builds the index");
        p.insert(msg(2, 1));
        p.insert(msg(0, 1));
        let got: Vec<_> = (0..4).map(|_| text(p.take_from(1))).collect();
        assert_eq!(got, ["1:0", "1:1", "1:2", "1:4"]);
    }

    #[test]
    fn tombstones_are_compacted() {
        let mut p = PullQueue::default();
        // One message of connection 1 stays at the front while connection 2's pass by.
        p.push_back(msg(0, 1));
        for seq in 1..=1000 {
            p.push_back(msg(seq, 2));
            assert_eq!(text(p.take_from(2)), format!("2:{seq}"));
            assert!(p.slots.len() <= 2 * COMPACT_AT + 1, "{}", p.slots.len());
        }
        assert_eq!(p.len(), 1);
        assert_eq!(text(p.pop_front()), "1:0");
    }

    #[test]
    fn connection_events_are_not_taken() {
        let mut p = PullQueue::default();
        p.push_back(Queued {
            seq: 0,
            ev: Event {
                conn: Some(1),
                kind: EventKind::Close {
                    code: 1000,
                    reason: String::new(),
                    unsent: 0,
                },
            },
        });
        assert!(p.take_from(1).is_none());
        assert_eq!(p.len(), 1);
        assert_eq!(p.clear(), 1);
        assert_eq!(p.len(), 0);
    }
}
