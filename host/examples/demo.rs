//! A short demonstration: the emulated 1C platform loads the add-in and goes through what a
//! 1C developer's code does with it. Run by `scripts/demo.sh`.

use ws1c_host::{Host, HostOptions, Var};

fn show(v: &Var) -> String {
    match v {
        Var::Str(s) => format!("\"{s}\""),
        Var::I4(i) => i.to_string(),
        Var::R8(d) => d.to_string(),
        Var::Bool(b) => {
            if *b {
                "Истина".into()
            } else {
                "Ложь".into()
            }
        }
        other => format!("{other:?}"),
    }
}

fn main() {
    let path = ws1c_host::default_library_path();
    println!(
        "ПодключитьВнешнююКомпоненту(\"{}\", \"WebSocket\", ТипВнешнейКомпоненты.Native)",
        path.display()
    );
    let host =
        Host::load(&path).unwrap_or_else(|e| panic!("cannot load {}: {e:?}", path.display()));
    println!("  GetClassNames() = {}", host.class_names());
    println!(
        "  SetPlatformCapabilities(3) = {}",
        host.set_platform_capabilities(3)
    );
    println!("  GetAttachType() = {:?}", host.attach_type());

    for (class, var) in [("Client", "Клиент"), ("Server", "Сервер")] {
        let obj = host.create(class, HostOptions::default()).expect("create");
        println!(
            "\n{var} = Новый(\"AddIn.WebSocket.{}\");",
            obj.extension_name()
        );
        println!("  методы / methods:");
        for i in 0..obj.n_methods() {
            let ru = obj.method_name(i, 1).unwrap_or_default();
            let en = obj.method_name(i, 0).unwrap_or_default();
            let params: Vec<String> = (0..obj.n_params(i))
                .map(|k| match obj.param_default(i, k) {
                    Some(d) => format!("п{} = {}", k + 1, show(&d)),
                    None => format!("п{}", k + 1),
                })
                .collect();
            let ret = if obj.has_ret_val(i) {
                " → значение"
            } else {
                ""
            };
            println!("    {ru} / {en}({}){ret}", params.join(", "));
        }
        println!("  свойства / properties:");
        for i in 0..obj.n_props() {
            let ru = obj.prop_name(i, 1).unwrap_or_default();
            let en = obj.prop_name(i, 0).unwrap_or_default();
            let value = obj
                .get_prop_raw(i)
                .map(|v| show(&v))
                .unwrap_or_else(|e| format!("<{}>", e.text));
            let rw = if obj.is_writable(i) {
                "чтение и запись"
            } else {
                "только чтение"
            };
            println!("    {ru} / {en} = {value} ({rw})");
        }
        let mode = obj.find_prop("режимдоставки");
        println!("  {var}.РежимДоставки = \"Опрос\";");
        obj.set("РежимДоставки", Var::Str("Опрос".into()))
            .expect("set");
        println!("    → {}", show(&obj.get_prop_raw(mode).expect("get")));
        let timeout_call = if class == "Client" {
            obj.call("Принять", &mut [Var::Str("пять секунд".into()), Var::Empty])
        } else {
            obj.call(
                "Принять",
                &mut [Var::Str("пять секунд".into()), Var::Empty, Var::Empty],
            )
        };
        if let Err(e) = timeout_call {
            println!(
                "  Попытка {var}.Принять(\"пять секунд\", Данные) → исключение:\n    {}",
                e.text
            );
        }
        let described = obj
            .call("ОписаниеОшибки", &mut [])
            .expect("ErrorDescription");
        println!("  {var}.ОписаниеОшибки() = {}", show(&described));
        let conn = obj.conn();
        let mut obj = obj;
        let took = obj.done();
        obj.destroy();
        println!(
            "  Done() за {took:?}, DestroyObject; вызовов платформы после Done(): {}",
            conn.calls_after_done()
        );
    }

    let english = host
        .create("Client", HostOptions::english())
        .expect("create");
    if let Err(e) = english.call("Receive", &mut [Var::Bool(true), Var::Empty]) {
        println!("\nEnglish locale: Client.Receive(True, Data) → {}", e.text);
    }
    english.destroy();

    let m = host.mem();
    println!(
        "\nМенеджер памяти платформы / platform memory: выделено {}, освобождено {}, не возвращено {}, чужих освобождений {}",
        m.allocs, m.frees, m.outstanding, m.unknown_frees
    );
    assert_eq!((m.outstanding, m.unknown_frees), (0, 0));
}
