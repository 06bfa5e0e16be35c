//! What every object shares: the hub and its settings (the properties `РежимДоставки`,
//! `ИсточникСобытий`, `РазмерОчереди`, `ТаймаутЗавершения`, `ВОчереди`,
//! `НеДоставлено`), the platform context, the engine (runtime lease, tokens, tracker), the
//! pusher thread, the pull calls, the close-code rule and `Done()`. An object is its own
//! members plus one [`ObjectCore`].
//!
//! Ownership: the core owns its hub (shared with the object's tasks and its pusher through
//! `Arc`), its engine (created at the first network operation, dropped with the object) and
//! its pusher. While the object is attached to a persistent server, `hub` is that server's
//! (the persistent registry owns it, its engine and its pusher) and `own_hub` stays idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Names, Result};
use crate::event::EventKind;
use crate::hub::{Hub, HubSettings, Pusher};
use crate::lang::Lang;
use crate::platform::{AppType, EventSink, PlatformContext};
use crate::registry::{MethodDef, PropDef, PropId};
use crate::runtime::Engine;
use crate::value::Value;

use super::Args;

const TIMEOUT: Names = Names {
    ru: "Таймаут",
    en: "Timeout",
};

/// The largest timeout argument, in ms (about 49 days: what a `u32` holds).
const MAX_TIMEOUT_MS: u64 = u32::MAX as u64;

/// `Таймаут` in ms: a whole number; 0 waits without a bound (`None`).
fn wait_of(v: &Value) -> Result<Option<Duration>> {
    let ms = v.whole(TIMEOUT, 0, MAX_TIMEOUT_MS)?;
    Ok((ms > 0).then(|| Duration::from_millis(ms)))
}

/// The close code `Отключиться` / `Отключить` sends: 1000, or an application code
/// 3000–4999 as given; anything else becomes 1000 (these calls never raise over a code).
pub fn close_code(code: f64) -> u16 {
    if code == 1000.0 || (3000.0..=4999.0).contains(&code) {
        code as u16
    } else {
        1000
    }
}

/// A message as `Данные`: text as a string, binary as binary data.
fn payload(kind: EventKind) -> Value {
    match kind {
        EventKind::Text(t) => Value::Str(t),
        EventKind::Binary(b) => Value::Binary(b),
        _ => Value::Str(String::new()),
    }
}

/// The shared part of an object (see the module docs).
pub struct ObjectCore {
    /// The hub settings, as 1C code set them.
    pub settings: HubSettings,
    /// Where the add-in runs (from `Init`).
    app: AppType,
    /// The platform's sink (from `Init`); handed to an attached persistent server's hub.
    sink: Option<Arc<dyn EventSink>>,
    /// The hub in use: `own_hub`, or an attached persistent server's.
    hub: Arc<Hub>,
    own_hub: Arc<Hub>,
    /// Created at the first network operation.
    engine: Option<Engine>,
    /// The pusher of `own_hub`, started with the engine.
    pusher: Option<Pusher>,
    /// The language of texts (for those that travel in events rather than exceptions).
    lang: Lang,
    done: bool,
}

impl Default for ObjectCore {
    fn default() -> Self {
        ObjectCore::new()
    }
}

impl ObjectCore {
    /// A core with default settings, not yet attached to a platform.
    pub fn new() -> ObjectCore {
        let settings = HubSettings::default();
        let hub = Hub::new(&settings, AppType::Unknown);
        ObjectCore {
            settings,
            app: AppType::Unknown,
            sink: None,
            own_hub: hub.clone(),
            hub,
            engine: None,
            pusher: None,
            lang: Lang::default(),
            done: false,
        }
    }

    /// The language of texts, as the platform set it.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The platform set the language.
    pub fn set_lang(&mut self, lang: Lang) {
        self.lang = lang;
    }

    /// `Init`: the platform is known.
    pub fn attach(&mut self, ctx: PlatformContext) {
        self.app = ctx.app;
        ctx.sink.set_buffer_depth(self.settings.capacity);
        self.sink = Some(ctx.sink.clone());
        self.hub.set_sink(Some(ctx.sink));
        self.apply();
    }

    /// Where the add-in runs.
    pub fn app(&self) -> AppType {
        self.app
    }

    fn apply(&self) {
        self.hub.configure(&self.settings, self.app);
    }

    /// The hub in use.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// A new hub with this object's settings (for a persistent server).
    pub fn new_hub(&self) -> Arc<Hub> {
        Hub::new(&self.settings, self.app)
    }

    /// Uses `hub` (a persistent server's, with what arrived meanwhile): this object's
    /// platform receives its pushed events and its settings apply to it.
    pub fn use_hub(&mut self, hub: Arc<Hub>) {
        self.hub = hub;
        self.hub.set_sink(self.sink.clone());
        self.apply();
    }

    /// Leaves the attached hub (its events wait for the next object) and goes back to the
    /// object's own.
    pub fn release_hub(&mut self) {
        if !Arc::ptr_eq(&self.hub, &self.own_hub) {
            self.hub.set_sink(None);
            self.hub = self.own_hub.clone();
        }
    }

    /// The engine, started (with the pusher) at the first call.
    pub fn engine(&mut self) -> Result<&Engine> {
        if self.engine.is_none() {
            self.pusher = Some(Pusher::start(&self.own_hub)?);
            self.engine = Some(Engine::start()?);
        }
        self.engine
            .as_ref()
            .ok_or_else(|| Error::Runtime("no runtime".into()))
    }

    /// The engine, if one was started.
    pub fn started_engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// Refuses calls after `Done()`.
    pub fn check_live(&self) -> Result<()> {
        if self.done {
            Err(Error::ObjectDone)
        } else {
            Ok(())
        }
    }

    /// Reads a property of the core (`None` if `prop` is the object's own).
    pub fn get(&self, prop: &PropDef, lang: Lang) -> Option<Value> {
        if let Some(v) = self.settings.get(prop.id, lang) {
            return Some(v);
        }
        Some(match prop.id {
            PropId::Pending => Value::from_count(self.hub.pending() as u64),
            PropId::Undelivered => Value::from_count(self.hub.undelivered()),
            PropId::ShutdownTimeouts => Value::from_count(crate::runtime::shutdown_timeouts()),
            _ => return None,
        })
    }

    /// Writes a property of the core (`Ok(false)` if `prop` is the object's own). A new
    /// `РазмерОчереди` is also asked of the platform as its event buffer depth.
    pub fn set(&mut self, prop: &PropDef, v: &Value) -> Result<bool> {
        if !self.settings.set(prop.id, prop.names, v)? {
            return Ok(false);
        }
        if prop.id == PropId::QueueCapacity
            && let Some(sink) = &self.sink
        {
            sink.set_buffer_depth(self.settings.capacity);
        }
        self.apply();
        Ok(true)
    }

    /// The pull calls both objects have, `None` for other methods:
    /// `Получить` / `Принять(Таймаут, Данные)` on the client, `Принять(Таймаут, ИДКлиента,
    /// Данные)` on the server (the table says which), and `ПолучитьСобытие(Таймаут, Событие,
    /// Данные)`.
    pub fn call(&self, m: &MethodDef, args: &mut Args) -> Option<Result<Value>> {
        use crate::registry::MethodId;
        match m.id {
            MethodId::Receive => Some(self.receive_message(m, args)),
            MethodId::ReceiveEvent => Some(self.receive_event(args)),
            _ => None,
        }
    }

    /// The next message into the data argument (text as a string, binary as binary data)
    /// and, on the server, its connection id into the id argument; `False` with `""` (and
    /// id 0) after the timeout or when nothing can arrive any more.
    fn receive_message(&self, m: &MethodDef, args: &mut Args) -> Result<Value> {
        let wait = wait_of(args.get(0))?;
        let (id, data) = if m.params.len() == 3 {
            (Some(1), 2)
        } else {
            (None, 1)
        };
        let Some(ev) = self.hub.receive(wait, true) else {
            if let Some(id) = id {
                args.set_out(id, Value::Int(0));
            }
            args.set_out(data, Value::Str(String::new()));
            return Ok(Value::Bool(false));
        };
        if let Some(id) = id {
            args.set_out(id, Value::from_count(ev.conn.unwrap_or(0)));
        }
        args.set_out(data, payload(ev.kind));
        Ok(Value::Bool(true))
    }

    /// `ПринятьОт(ИДКлиента, Таймаут, Данные)` on the server: the next message of connection
    /// `id` into `Данные` (as [`ObjectCore::call`]'s `Принять`), leaving every other event
    /// queued in order; `False` with `""` after the timeout, or at once when nothing of `id`
    /// is queued and `live()` says it can deliver nothing more (ended, or never existed).
    pub fn receive_from(&self, id: u64, args: &mut Args, live: impl Fn() -> bool) -> Result<Value> {
        let wait = wait_of(args.get(1))?;
        let (found, payload) = match self.hub.receive_from(id, wait, live) {
            Some(ev) => (true, payload(ev.kind)),
            None => (false, Value::Str(String::new())),
        };
        args.set_out(2, payload);
        Ok(Value::Bool(found))
    }

    /// The next event of any kind, waiting as `Таймаут` (argument 0) says.
    pub fn next_event(&self, args: &Args) -> Result<Option<crate::event::Event>> {
        let wait = wait_of(args.get(0))?;
        Ok(self.hub.receive(wait, false))
    }

    /// The next event's JSON header and payload.
    fn receive_event(&self, args: &mut Args) -> Result<Value> {
        let wait = wait_of(args.get(0))?;
        let (found, header, data) = match self.hub.receive(wait, false) {
            Some(ev) => (true, ev.header(), ev.data()),
            None => (false, String::new(), String::new()),
        };
        args.set_out(1, Value::Str(header));
        args.set_out(2, Value::Str(data));
        Ok(Value::Bool(found))
    }

    /// `Done()`, after the object let go of what is its own (an attached persistent
    /// server); returns by `deadline` (`ТаймаутЗавершения` from the start of `Done()`).
    ///
    /// Why this order: `abi/` has already disarmed the platform handle, so no event can
    /// reach 1C, and waited for a push in flight. Stopping the pusher closes the hub, which
    /// wakes anything waiting on it. Then the engine drains (queued sends go out,
    /// connections close with 1001) and cancels, joining the tasks on this (1C) thread. The
    /// runtime lease itself goes when the object is dropped.
    pub fn done(&mut self, deadline: Instant) {
        self.done = true;
        self.release_hub();
        let left = || deadline.saturating_duration_since(Instant::now());
        match &mut self.pusher {
            Some(p) => {
                if !p.stop(left()) {
                    crate::runtime::count_shutdown_timeout();
                }
            }
            None => self.own_hub.close(),
        }
        if let Some(e) = &self.engine {
            e.shutdown(left());
        }
    }
}
