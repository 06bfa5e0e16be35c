//! The add-in driven through its C ABI by the emulated platform (`ws1c-host`), in the
//! platform's order: exports, creation, Init/setMemManager, discovery in both languages,
//! calls with defaults and by-reference results, errors, panics, Done and DestroyObject.

mod common;

use common::{assert_memory_clean, create, create_with, finish, host, serial};
use ws1c_host::{HostOptions, HostTm, Var};

const CLASSES: [&str; 3] = ["Client", "Server", "SocketIO"];

#[test]
fn exports_answer_as_the_platform_expects() {
    let _g = serial();
    let h = host();
    assert_eq!(h.class_names(), "Client|Server|SocketIO");
    assert_eq!(h.set_platform_capabilities(3), 3);
    assert_eq!(h.attach_type(), Some(3));
    for class in CLASSES {
        let obj = create(class);
        assert_eq!(
            obj.extension_name(),
            class,
            "RegisterExtensionAs = AddIn.WebSocket.{class}"
        );
        assert_eq!(
            obj.conn().buffer_depth(),
            10_000,
            "SetEventBufferDepth(РазмерОчереди) at Init"
        );
        assert!(
            obj.conn().get_interface_calls() > 0,
            "IPlatformInfo consulted"
        );
        finish(obj);
    }
    assert!(
        h.create("Клиент", HostOptions::default()).is_err(),
        "unknown class refused"
    );
    assert_memory_clean();
}

/// Upper and lower case in both alphabets, as 1C's case-insensitive lookup needs.
fn cases(name: &str) -> [String; 3] {
    [name.to_owned(), name.to_uppercase(), name.to_lowercase()]
}

#[test]
fn every_member_is_found_by_both_names_in_any_case() {
    let _g = serial();
    for class in CLASSES {
        for mem_first in [false, true] {
            let obj = create_with(
                class,
                HostOptions {
                    mem_first,
                    ..HostOptions::default()
                },
            );
            assert!(obj.n_methods() >= 8 && obj.n_props() >= 10, "{class}");
            for i in 0..obj.n_methods() {
                for alias in [0, 1] {
                    let name = obj.method_name(i, alias).expect("method name");
                    for n in cases(&name) {
                        assert_eq!(obj.find_method(&n), i, "{class}.{n}");
                    }
                }
                let _ = obj.has_ret_val(i);
                assert!(obj.n_params(i) >= 0);
            }
            for i in 0..obj.n_props() {
                for alias in [0, 1] {
                    let name = obj.prop_name(i, alias).expect("property name");
                    for n in cases(&name) {
                        assert_eq!(obj.find_prop(&n), i, "{class}.{n}");
                    }
                }
            }
            assert_eq!(obj.find_method("НесуществующийМетод"), -1);
            assert_eq!(obj.find_prop("Nope"), -1);
            assert_eq!(obj.method_name(obj.n_methods(), 0), None);
            finish(obj);
        }
    }
    assert_memory_clean();
}

#[test]
fn documented_names_and_arity() {
    let _g = serial();
    let client = create("Client");
    let receive = client.find_method("Получить");
    assert_eq!(client.find_method("ПРИНЯТЬ"), receive);
    assert_eq!(client.find_method("receive"), receive);
    assert_eq!(client.n_params(receive), 2);
    assert!(client.has_ret_val(receive));
    assert_eq!(client.method_name(receive, 1).as_deref(), Some("Получить"));
    for (name, n) in [
        ("Подключиться", 2),
        ("НачатьПодключение", 2),
        ("Отключиться", 3),
        ("Отправить", 1),
        ("ОписаниеОшибки", 0),
    ] {
        assert_eq!(client.n_params(client.find_method(name)), n, "{name}");
    }
    for prop in [
        "Статус",
        "Сервер",
        "Версия",
        "РежимДоставки",
        "ИсточникСобытий",
        "ВОчереди",
    ] {
        assert!(client.find_prop(prop) >= 0, "{prop}");
    }
    let server = create("Server");
    let receive = server.find_method("Принять");
    assert_eq!(server.find_method("получить"), receive);
    assert_eq!(server.n_params(receive), 3);
    assert_eq!(server.method_name(receive, 1).as_deref(), Some("Принять"));
    for (name, n) in [
        ("Запустить", 5),
        ("Остановить", 0),
        ("Отправить", 2),
        ("Отключить", 3),
    ] {
        assert_eq!(server.n_params(server.find_method(name)), n, "{name}");
    }
    for prop in ["Сервер", "Порт", "Соединения", "КоличествоСоединений"]
    {
        assert!(server.find_prop(prop) >= 0, "{prop}");
    }
    assert_eq!(server.get("Порт").unwrap(), Var::I4(0));
    assert_eq!(server.get("Соединения").unwrap(), Var::Str(String::new()));
    finish(client);
    finish(server);
    assert_memory_clean();
}

#[test]
fn omitted_arguments_take_their_defaults() {
    let _g = serial();
    for class in CLASSES {
        let obj = create(class);
        let m = obj.find_method("ТестПоУмолчанию");
        assert!(
            m >= 0,
            "the library must be built with --features test-hooks"
        );
        assert_eq!(
            obj.param_default(m, 0),
            Some(Var::Str("по умолчанию".into()))
        );
        assert_eq!(obj.param_default(m, 1), Some(Var::I4(7)));
        assert_eq!(obj.param_default(m, 2), Some(Var::Bool(true)));
        assert_eq!(obj.param_default(m, 3), Some(Var::Empty));
        let r = obj.call("ТестПоУмолчанию", &mut []).unwrap();
        assert_eq!(r, Var::Str("по умолчанию|7|true|Undefined".into()));
        let r = obj
            .call("TestDefaults", &mut [Var::Str("своё".into()), Var::R8(2.5)])
            .unwrap();
        assert_eq!(r, Var::Str("своё|2.5|true|Undefined".into()));
        // Undefined passed explicitly for an optional argument means "the default".
        let r = obj
            .call(
                "TestDefaults",
                &mut [Var::Empty, Var::Empty, Var::Bool(false)],
            )
            .unwrap();
        assert_eq!(r, Var::Str("по умолчанию|7|false|Undefined".into()));
        let te = obj.find_method("TestEcho");
        assert_eq!(
            obj.param_default(te, 0),
            None,
            "a mandatory parameter has no default"
        );
        assert!(
            obj.call("TestEcho", &mut []).is_err(),
            "a missing mandatory argument"
        );
        finish(obj);
    }
    let client = create("Client");
    let m = client.find_method("Disconnect");
    assert_eq!(client.param_default(m, 0), Some(Var::I4(1000)));
    assert_eq!(client.param_default(m, 1), Some(Var::Str(String::new())));
    let c = client.find_method("Connect");
    assert_eq!(client.param_default(c, 0), None);
    assert_eq!(client.param_default(c, 1), Some(Var::Str(String::new())));
    finish(client);
    let server = create("Server");
    let run = server.find_method("Run");
    assert_eq!(server.param_default(run, 1), None);
    for k in 2..5 {
        assert_eq!(server.param_default(run, k), Some(Var::Str(String::new())));
    }
    finish(server);
    assert_memory_clean();
}

fn round_trip_values() -> Vec<(Var, Var)> {
    let mib: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let date = HostTm {
        year: 2026,
        month: 11,
        day: 22,
        hour: 23,
        min: 59,
        sec: 58,
    };
    let same = |v: Var| (v.clone(), v);
    vec![
        same(Var::Str("Привет, мир! Ёё ЙЦУКЕН 😀".into())),
        same(Var::Str(String::new())),
        same(Var::Str("x".repeat(100_000))),
        same(Var::Blob(Vec::new())),
        same(Var::Blob(mib)),
        same(Var::I4(0)),
        same(Var::I4(i32::MIN)),
        same(Var::I4(-42)),
        same(Var::R8(3.25)),
        same(Var::R8(-0.1)),
        same(Var::Bool(true)),
        same(Var::Bool(false)),
        same(Var::Tm(date)),
        same(Var::Tm(HostTm {
            year: 1,
            month: 1,
            day: 1,
            hour: 0,
            min: 0,
            sec: 0,
        })),
        same(Var::Empty),
        same(Var::Null),
        // Tags the platform may send that come back under the tag we return.
        (Var::I2(-7), Var::I4(-7)),
        (Var::UI1(200), Var::I4(200)),
        (Var::UI4(4_000_000_000), Var::R8(4e9)),
        (Var::I8(1 << 40), Var::R8((1u64 << 40) as f64)),
        (Var::I8(12), Var::I4(12)),
        (Var::R4(1.5), Var::R8(1.5)),
        (Var::PStr(b"ascii".to_vec()), Var::Str("ascii".into())),
        (
            Var::Date(46_348.5),
            Var::Tm(HostTm {
                year: 2026,
                month: 11,
                day: 22,
                hour: 12,
                min: 0,
                sec: 0,
            }),
        ),
    ]
}

#[test]
fn every_value_type_round_trips_through_a_property_and_a_method() {
    let _g = serial();
    for class in CLASSES {
        let obj = create(class);
        for (sent, expected) in round_trip_values() {
            obj.set("ТестЗначение", sent.clone()).unwrap();
            assert_eq!(
                obj.get("TestValue").unwrap(),
                expected,
                "property, sent {}",
                brief(&sent)
            );
            let got = obj.call("ТестЭхо", &mut [sent.clone()]).unwrap();
            assert_eq!(got, expected, "method, sent {}", brief(&sent));
            let mut args = [sent.clone(), Var::Empty];
            obj.call("TestOut", &mut args).unwrap();
            assert_eq!(args[1], expected, "by-ref, sent {}", brief(&sent));
        }
        finish(obj);
    }
    assert_memory_clean();
}

fn brief(v: &Var) -> String {
    let s = format!("{v:?}");
    if s.len() > 80 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(80).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

#[test]
fn by_ref_results_replace_whatever_the_variable_held() {
    let _g = serial();
    let obj = create("Client");
    let before = host().mem();
    // The old value is a platform buffer (freed by the add-in), a number (nothing to free),
    // binary data, or a date.
    for old in [
        Var::Str("старое значение".into()),
        Var::I4(7),
        Var::Blob(vec![1, 2, 3]),
        Var::Tm(HostTm {
            year: 2020,
            month: 2,
            day: 29,
            hour: 1,
            min: 2,
            sec: 3,
        }),
        Var::Empty,
    ] {
        let mut args = [Var::Str("выход".into()), old.clone()];
        obj.call_proc("ТестВыход", &mut args).unwrap();
        assert_eq!(args[1], Var::Str("выход".into()), "old value {old:?}");
        let mut args = [Var::Blob(vec![9; 3]), old];
        obj.call_proc("ТестВыход", &mut args).unwrap();
        assert_eq!(args[1], Var::Blob(vec![9; 3]));
    }
    let after = host().mem();
    assert_eq!(
        after.outstanding, before.outstanding,
        "every buffer freed once"
    );
    assert_eq!(after.unknown_frees, 0);
    finish(obj);
    assert_memory_clean();
}

/// The benchmarks' prepared calls: inputs encoded once, an output the add-in writes over one
/// is read back and freed, the input restored; nothing leaks over many calls.
#[test]
fn prepared_calls_restore_inputs_and_free_outputs() {
    let _g = serial();
    let obj = create("Client");
    let before = host().mem();
    let idx = obj.find_method("ТестВыход");
    assert!(idx >= 0);
    {
        let mut p = obj.prepare(&[Var::Str("выход".into()), Var::Str("старое".into())]);
        for _ in 0..100 {
            assert_eq!(p.call(idx, false).unwrap(), Var::Empty);
        }
        p.set(0, Var::Blob(vec![1, 2]));
        assert_eq!(p.call(idx, false).unwrap(), Var::Empty);
        assert_eq!(host().mem().outstanding, before.outstanding + 2);
    }
    let after = host().mem();
    assert_eq!(after.outstanding, before.outstanding, "every buffer freed");
    assert!(
        after.frees >= before.frees + 200,
        "outputs freed: {after:?}"
    );
    assert_eq!(after.unknown_frees, 0);
    finish(obj);
    assert_memory_clean();
}

#[test]
fn a_wrong_argument_type_raises_a_readable_error() {
    let _g = serial();
    let client = create("Client");
    let err = client
        .call("Получить", &mut [Var::Str("abc".into()), Var::Empty])
        .unwrap_err();
    assert_eq!(
        err.text,
        "Неверный тип параметра 1 (Таймаут) метода Получить: ожидается Число, передано Строка"
    );
    assert_eq!(err.wcode, 1006, "ADDIN_E_FAIL");
    assert_ne!(err.scode, 0, "a non-zero scode makes it an exception");
    let described = client.call("ОписаниеОшибки", &mut []).unwrap();
    assert_eq!(
        described,
        Var::Str(err.text.clone()),
        "ОписаниеОшибки() keeps the text"
    );
    // R8 is accepted wherever a number is (1C sends large and fractional numbers as R8).
    assert_eq!(
        client.call("ТестЧисло", &mut [Var::R8(2.5)]).unwrap(),
        Var::R8(5.0)
    );
    assert_eq!(
        client.call("ТестЧисло", &mut [Var::I4(21)]).unwrap(),
        Var::R8(42.0)
    );
    let err = client
        .call(
            "ОтправитьДвоичныеДанные",
            &mut [Var::Str("не двоичные".into())],
        )
        .unwrap_err();
    assert!(
        err.text
            .contains("ожидается ДвоичныеДанные, передано Строка"),
        "{}",
        err.text
    );
    let err = client
        .set("РазмерОчереди", Var::Str("много".into()))
        .unwrap_err();
    assert!(
        err.text.contains("РазмерОчереди") && err.text.contains("Число"),
        "{}",
        err.text
    );
    let err = client
        .set("РежимДоставки", Var::Str("быстро".into()))
        .unwrap_err();
    assert!(
        err.text.contains("Авто, Опрос, События, Уведомления"),
        "{}",
        err.text
    );
    // The platform checks IsPropWritable first; a host that writes anyway gets our text.
    let status = client.find_prop("Статус");
    assert!(!client.is_writable(status));
    let err = client.set_prop_raw(status, Var::I4(1)).unwrap_err();
    assert!(err.text.contains("только для чтения"), "{}", err.text);
    finish(client);

    let server = create_with("Server", HostOptions::english());
    let err = server
        .call("Send", &mut [Var::Str("1".into()), Var::Str("text".into())])
        .unwrap_err();
    assert_eq!(
        err.text,
        "Wrong type of argument 1 (ClientId) of method Send: expected Number, got String"
    );
    // More arguments than declared cannot come from 1C code; a host that sends them gets a
    // clear error, and a nonsensical array (negative count, null with a count) is refused.
    let stop = server.find_method("Stop");
    let err = server
        .raw_call_with(stop, &mut [Var::I4(1)], 1, false)
        .unwrap_err();
    assert!(err.text.contains("expected 0, got 1"), "{}", err.text);
    let err = server.raw_call_with(stop, &mut [], -1, false).unwrap_err();
    assert!(err.text.contains("invalid parameter array"), "{}", err.text);
    let err = server.raw_call_with(stop, &mut [], 3, true).unwrap_err();
    assert!(err.text.contains("invalid parameter array"), "{}", err.text);
    finish(server);
    assert_memory_clean();
}

/// Tags 1C never sends for a value (interface, CLSID, error code, HRESULT, nested variant,
/// and the vector / array / by-reference flags) are refused with the wrong-type error, in
/// typed and untyped parameters and in properties — never read as Undefined or a number.
#[test]
fn odd_variant_tags_are_refused_as_a_wrong_type() {
    let _g = serial();
    let client = create("Client");
    // VTYPE_INTERFACE, VTYPE_ERROR, VTYPE_VARIANT, VTYPE_HRESULT, VTYPE_CLSID,
    // VECTOR|I4, ARRAY|I4, BYREF|I4, BYREF|PWSTR, an unknown tag.
    for tag in [9u16, 10, 12, 21, 24, 0x1003, 0x2003, 0x4003, 0x4016, 99] {
        let err = client
            .call("Получить", &mut [Var::Other(tag), Var::Empty])
            .unwrap_err();
        assert!(
            err.text
                .contains("передано значение неподдерживаемого типа"),
            "tag {tag:#x}: {}",
            err.text
        );
        let err = client.call("ТестЭхо", &mut [Var::Other(tag)]).unwrap_err();
        assert!(
            err.text.contains("неподдерживаемого"),
            "tag {tag:#x}: {}",
            err.text
        );
        let err = client.set("ИсточникСобытий", Var::Other(tag)).unwrap_err();
        assert!(
            err.text.contains("неподдерживаемого"),
            "tag {tag:#x}: {}",
            err.text
        );
    }
    assert_eq!(
        client.get("ИсточникСобытий").unwrap(),
        Var::Str("WebSocket".into())
    );
    finish(client);
    assert_memory_clean();
}

#[test]
fn a_panic_inside_the_add_in_is_an_exception_and_the_host_lives_on() {
    let _g = serial();
    for class in CLASSES {
        let obj = create(class);
        let err = obj.call("ТестПаника", &mut []).unwrap_err();
        assert!(
            err.text.contains("паника перехвачена") && err.text.contains("TestPanic"),
            "{}",
            err.text
        );
        let err = obj.get("ТестПаникаСвойство").unwrap_err();
        assert!(err.text.contains("TestPanicProp"), "{}", err.text);
        let err2 = obj.call_proc("TestPanic", &mut []).unwrap_err();
        assert!(err2.text.contains("TestPanic"));
        // The object still works, and remembers the last error.
        assert_eq!(obj.call("TestEcho", &mut [Var::I4(5)]).unwrap(), Var::I4(5));
        let d = obj.call("ErrorDescription", &mut []).unwrap();
        assert!(d.as_str().unwrap().contains("TestPanic"));
        finish(obj);
    }
    assert_memory_clean();
}

#[test]
fn hub_properties_keep_what_1c_code_sets() {
    let _g = serial();
    for class in CLASSES {
        let obj = create(class);
        assert_eq!(obj.get("РежимДоставки").unwrap(), Var::Str("Авто".into()));
        obj.set("DeliveryMode", Var::Str("PULL".into())).unwrap();
        assert_eq!(obj.get("РежимДоставки").unwrap(), Var::Str("Опрос".into()));
        assert_eq!(
            obj.get("ИсточникСобытий").unwrap(),
            Var::Str("WebSocket".into())
        );
        obj.set("ИсточникСобытий", Var::Str("Касса".into()))
            .unwrap();
        assert_eq!(obj.get("EventSource").unwrap(), Var::Str("Касса".into()));
        obj.set("РазмерОчереди", Var::R8(500.0)).unwrap();
        assert_eq!(obj.get("QueueCapacity").unwrap(), Var::I4(500));
        assert!(obj.set("РазмерОчереди", Var::I4(0)).is_err());
        assert_eq!(obj.get("ТаймаутЗавершения").unwrap(), Var::I4(5000));
        assert_eq!(obj.get("ВОчереди").unwrap(), Var::I4(0));
        assert_eq!(
            obj.get("Версия").unwrap(),
            Var::Str(env!("CARGO_PKG_VERSION").into())
        );
        finish(obj);
    }
    let english = create_with("Client", HostOptions::english());
    assert_eq!(
        english.get("DeliveryMode").unwrap(),
        Var::Str("auto".into())
    );
    finish(english);
    assert_memory_clean();
}

#[test]
fn after_done_nothing_reaches_the_platform() {
    let _g = serial();
    for class in CLASSES {
        let mut obj = create(class);
        let took = obj.done();
        assert!(took.as_secs() < 5, "Done() within its bound: {took:?}");
        // A platform bug (a call after Done) must neither crash nor call back into it.
        assert!(obj.get("Версия").is_err());
        assert!(obj.call("TestEcho", &mut [Var::I4(1)]).is_err());
        assert!(obj.find_method("TestEcho") >= 0, "lookup needs no platform");
        let conn = obj.conn();
        obj.destroy();
        assert_eq!(conn.calls_after_done(), 0);
    }
    assert_memory_clean();
}

#[test]
fn both_init_orders_and_server_mode_work() {
    let _g = serial();
    for app_type in [0, 1, 3, 4, -1] {
        for mem_first in [false, true] {
            let obj = create_with(
                "Server",
                HostOptions {
                    app_type,
                    mem_first,
                    ..HostOptions::default()
                },
            );
            assert_eq!(obj.get("Статус").unwrap(), Var::I4(0));
            assert_eq!(obj.conn().external_event_calls(), 0);
            finish(obj);
        }
    }
    assert_memory_clean();
}

#[test]
fn thousands_of_objects_leave_nothing_behind() {
    let _g = serial();
    for i in 0..2000 {
        let obj = create(CLASSES[i % 2]);
        obj.set("ТестЗначение", Var::Str(format!("объект {i}")))
            .unwrap();
        assert_eq!(
            obj.get("ТестЗначение").unwrap(),
            Var::Str(format!("объект {i}"))
        );
        finish(obj);
    }
    assert_memory_clean();
}
