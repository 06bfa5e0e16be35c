//! tVariant decoding of arguments, driven through the exported vtables as the platform does:
//! the add-in's C ABI layer (abi/, linked in as an rlib) under the ws1c-host platform
//! emulator. Each input is a sequence of calls on one Client and one Server object: methods
//! that need no network (ТестЭхо, ТестВыход, ТестЧисло, ТестПоУмолчанию, Получить, Принять,
//! ПолучитьСобытие, Отправить, Настроить, ...) called by name or by a raw index, with
//! arguments of any tag (every known tag with any payload, any other tag with a zero
//! payload), and properties read and written. Never a crash (a panic caught by the add-in's
//! guard is one too: libFuzzer's hook aborts); ТестЭхо gives back what it got; the host sees
//! no protocol violation and every platform buffer freed. Then the same bytes as a raw
//! tVariant image through `variant::read` (strings with unpaired surrogates, any tag and
//! payload bytes).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use websocket1c::types::{Buf, Payload, TVariant, vt};
use ws1c_host::{Exports, Host, HostOptions, HostTm, Obj, Var};

const CLIENT_METHODS: [&str; 13] = [
    "ТестЭхо",
    "TestOut",
    "ТестЧисло",
    "ТестПоУмолчанию",
    "Получить",
    "ПолучитьСобытие",
    "Отправить",
    "ОтправитьДвоичныеДанные",
    "ОтправитьПинг",
    "Отключиться",
    "ОписаниеОшибки",
    "Receive",
    "NoSuchMethod",
];
const SERVER_METHODS: [&str; 11] = [
    "Настроить",
    "Отправить",
    "ОтправитьДвоичныеДанные",
    "ОтправитьВсем",
    "Принять",
    "ПолучитьСобытие",
    "Отключить",
    "ИнформацияОСоединении",
    "Остановить",
    "ОписаниеОшибки",
    "ТестЭхо",
];
const PROPS: [&str; 10] = [
    "ТестЗначение",
    "РежимДоставки",
    "ИсточникСобытий",
    "РазмерОчереди",
    "ВОчереди",
    "НеДоставлено",
    "ЗавершенийПоТаймауту",
    "Статус",
    "Version",
    "Подпротокол",
];
/// Members never called by index: they panic on purpose (the guard's own tests), reach the
/// network, or stretch `Done()`.
const SKIPPED_METHODS: [&str; 3] = ["ТестПаника", "Подключиться", "Запустить"];
const SKIPPED_PROPS: [&str; 2] = ["ТестПаникаСвойство", "ТаймаутЗавершения"];

/// A value of any tag: the known ones with any payload, any other tag bare.
fn var(u: &mut Unstructured<'_>) -> Result<Var> {
    Ok(match u.int_in_range(0..=16)? {
        0 => Var::Empty,
        1 => Var::Null,
        2 => Var::Bool(u.arbitrary()?),
        3 => Var::I2(u.arbitrary()?),
        4 => Var::I4(u.arbitrary()?),
        5 => Var::I8(u.arbitrary()?),
        6 => Var::UI1(u.arbitrary()?),
        7 => Var::UI4(u.arbitrary()?),
        8 => Var::R4(u.arbitrary()?),
        9 => Var::R8(u.arbitrary()?),
        10 => Var::Date(u.arbitrary()?),
        // Fields in the ranges of `struct tm` (the host refuses others, even its own; the
        // raw image below sends any), any year `tm_year` holds.
        11 => Var::Tm(HostTm::new(
            u.int_in_range(i32::MIN + 1900..=i32::MAX)?,
            u.int_in_range(1..=12)?,
            u.int_in_range(1..=31)?,
            u.int_in_range(0..=23)?,
            u.int_in_range(0..=59)?,
            u.int_in_range(0..=60)?,
        )),
        12 | 13 => Var::Str(no_nul_last(u.arbitrary()?)),
        14 => {
            let mut b: Vec<u8> = u.arbitrary()?;
            if b.last() == Some(&0) {
                b.push(b'.');
            }
            Var::PStr(b)
        }
        15 => Var::Blob(u.arbitrary()?),
        // Any other tag, bare. A bare TM would be a date with day 0, which the host refuses
        // to read back even from itself: sent as an array of TM instead.
        _ => match u.arbitrary()? {
            vt::TM => Var::Other(0x2000 | vt::TM),
            tag => Var::Other(tag),
        },
    })
}

/// A string that does not end in U+0000: the host takes a returned string ending in one for
/// a length that counts the terminator (a real bug it must keep catching), and such a
/// string comes back whole from ТестЭхо or ТестЗначение. U+0000 elsewhere stays.
fn no_nul_last(mut s: String) -> String {
    if s.ends_with('\0') {
        s.push('.');
    }
    s
}

fn args(u: &mut Unstructured<'_>) -> Result<Vec<Var>> {
    let n = u.int_in_range(0..=5)?;
    (0..n).map(|_| var(u)).collect()
}

struct World {
    host: Host,
    objs: [Obj; 2],
    /// Indexes of the skipped methods and properties of each object.
    skipped: [(Vec<i64>, Vec<i64>); 2],
}

impl World {
    fn new() -> World {
        let exports = Exports {
            get_class_names: websocket1c::GetClassNames,
            get_class_object: websocket1c::GetClassObject,
            destroy_object: websocket1c::DestroyObject,
            set_platform_capabilities: Some(websocket1c::SetPlatformCapabilities),
            get_attach_type: Some(websocket1c::GetAttachType),
        };
        // SAFETY: the add-in's own exports, linked into this process.
        let host = unsafe { Host::in_process(exports) };
        let client = host.create("Client", HostOptions::default()).unwrap();
        let server = host.create("Server", HostOptions::english()).unwrap();
        let skipped = [&client, &server].map(|o| {
            (
                SKIPPED_METHODS.iter().map(|n| o.find_method(n)).collect(),
                SKIPPED_PROPS.iter().map(|n| o.find_prop(n)).collect(),
            )
        });
        World {
            host,
            objs: [client, server],
            skipped,
        }
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let k = usize::from(u.arbitrary::<bool>()?);
        let obj = &self.objs[k];
        match u.int_in_range(0..=5)? {
            0 | 1 => {
                let names: &[&str] = if k == 0 {
                    &CLIENT_METHODS
                } else {
                    &SERVER_METHODS
                };
                let name = *u.choose(names)?;
                let mut a = args(u)?;
                let sent = a.clone();
                let r = obj.call(name, &mut a);
                if name == "ТестЭхо"
                    && let (Ok(got), [arg]) = (&r, sent.as_slice())
                {
                    echoed(arg, got);
                }
            }
            2 => {
                // By index, as a platform that cached FindMethod would: any index, the
                // parameter count the array has.
                let idx = i64::from(u.int_in_range(-2i8..=40)?);
                if idx >= 0 && self.skipped[k].0.contains(&idx) {
                    return Ok(());
                }
                let mut a = args(u)?;
                let n = a.len() as i64;
                let _ = obj.raw_call_with(idx, &mut a, n, u.arbitrary()?);
            }
            3 => {
                let _ = obj.set(u.choose(&PROPS)?, var(u)?);
            }
            4 => {
                let _ = obj.get(u.choose(&PROPS)?);
            }
            _ => {
                let idx = i64::from(u.int_in_range(-2i8..=30)?);
                if idx >= 0 && self.skipped[k].1.contains(&idx) {
                    return Ok(());
                }
                if u.arbitrary()? {
                    let _ = obj.set_prop_raw(idx, var(u)?);
                } else {
                    let _ = obj.get_prop_raw(idx);
                }
            }
        }
        Ok(())
    }

    fn check(&self) {
        let v = self.host.violations();
        assert!(v.is_empty(), "protocol violations: {v:?}");
        let m = self.host.mem();
        assert_eq!(m.outstanding, 0, "platform memory not freed: {m:?}");
        assert_eq!(m.unknown_frees, 0, "{m:?}");
    }
}

/// ТестЭхо returns its argument: the same value where the value survives the trip as is.
fn echoed(sent: &Var, got: &Var) {
    match sent {
        Var::Str(_) | Var::Blob(_) | Var::Bool(_) | Var::I4(_) | Var::Empty | Var::Null => {
            assert_eq!(got, sent)
        }
        Var::I2(x) => assert_eq!(got, &Var::I4(i32::from(*x))),
        Var::UI1(x) => assert_eq!(got, &Var::I4(i32::from(*x))),
        Var::PStr(b) => assert_eq!(got, &Var::Str(String::from_utf8_lossy(b).into_owned())),
        _ => {}
    }
}

/// A tVariant image: tag, then payload bytes; a buffer tag points into the input.
fn raw_read(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let tag = u16::from_le_bytes([data[0], data[1]]);
    let rest = &data[2..];
    let mut image = [0u8; std::mem::size_of::<Payload>()];
    let n = rest.len().min(image.len());
    image[..n].copy_from_slice(&rest[..n]);
    // SAFETY: every member of the payload union is plain data valid for any bytes except the
    // pointers, which are set below before any tag that reads them.
    let mut payload: Payload = unsafe { std::mem::transmute(image) };
    let mut units: Vec<u16> = rest
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut bytes = rest.to_vec();
    match tag {
        vt::PWSTR => {
            payload.wstr = Buf {
                ptr: units.as_mut_ptr(),
                len: units.len() as u32,
            }
        }
        vt::PSTR | vt::BLOB => {
            payload.bytes = Buf {
                ptr: bytes.as_mut_ptr(),
                len: bytes.len() as u32,
            }
        }
        // The zone pointer is never read; nulled all the same.
        vt::TM => payload.tm.tm_zone = std::ptr::null(),
        _ => {}
    }
    let v = TVariant {
        u: payload,
        cb_elements: 0,
        vt: tag,
    };
    // SAFETY: the payload matches the tag: buffers live and as long as stated; any other tag
    // is plain data or not read (flags, unknown tags).
    let _ = unsafe { websocket1c::variant::read(&v) };
}

fuzz_target!(|data: &[u8]| {
    raw_read(data);
    // A fresh pair of objects for each input: what one input set (ТестЗначение, Настроить,
    // ...) must not decide what the next one sees, or a crash would not replay.
    let mut world = World::new();
    let mut u = Unstructured::new(data);
    for _ in 0..8 {
        if u.is_empty() || world.step(&mut u).is_err() {
            break;
        }
    }
    world.check();
    let World { host, objs, .. } = world;
    for o in objs {
        o.destroy();
    }
    let v = host.violations();
    assert!(v.is_empty(), "protocol violations after Done: {v:?}");
});
