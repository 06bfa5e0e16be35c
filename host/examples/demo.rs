//! The add-in doing its job in the emulated 1C platform, printed as the 1C code a developer
//! would write: a server started, a client connected to it, messages both ways (text,
//! Cyrillic, binary), first on a thin client with every event pushed to `ВнешнееСобытие`,
//! then in a scheduled job on the 1C server where the same traffic is pulled; a close with a
//! code and a reason; an exception in both interface languages; then what the platform
//! would suffer from: memory not given back, foreign frees, calls after `Done()`.
//!
//! Run by `scripts/demo.sh`. Every step checks its result; any surprise makes the process
//! exit with 1, and a watchdog ends it with 2 if it runs for more than 55 s.
//! `--members` also lists every member of both objects (names, defaults, properties).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ws1c_host::{Conn, Event, Host, HostOptions, Obj, Var};

/// How long one step may wait for the network (a healthy loopback needs milliseconds).
const STEP: Duration = Duration::from_secs(10);
/// The whole demo; it normally takes about a second.
const WATCHDOG: Duration = Duration::from_secs(55);

/// A value written as 1C code would write it.
fn lit(v: &Var) -> String {
    match v {
        Var::Str(s) => format!("\"{}\"", s.replace('"', "\"\"")),
        Var::Bool(true) => "Истина".into(),
        Var::Bool(false) => "Ложь".into(),
        Var::Empty => "Неопределено".into(),
        Var::Blob(b) => {
            let hex: Vec<String> = b.iter().map(|x| format!("{x:02X}")).collect();
            format!("ДвоичныеДанные ({} байт: {})", b.len(), hex.join(" "))
        }
        other => match other.as_f64() {
            Some(n) => n.to_string(),
            None => format!("{other:?}"),
        },
    }
}

/// What a call must return.
enum Expect {
    /// A procedure: nothing, and no exception.
    Proc,
    /// A function whose result is shown but not checked.
    Any,
    /// A function that must return this.
    Is(Var),
}

/// A component object and the name of the 1C variable that holds it.
struct Named {
    obj: Obj,
    var: &'static str,
}

/// The demo's state: how many steps did not behave.
struct Demo {
    failures: u32,
}

impl Demo {
    fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            self.failures += 1;
            println!("    !!! НЕ ТАК / UNEXPECTED: {what}");
        }
    }

    /// `Объект.Метод(args)`: prints the call, its result and the by-ref `outs` (argument
    /// index, 1C variable name) afterwards, and checks the result against `expect`.
    fn call(
        &mut self,
        o: &Named,
        method: &str,
        args: &mut [Var],
        shown: &str,
        outs: &[(usize, &str)],
        expect: Expect,
    ) -> Var {
        let text = format!("{}.{method}({shown})", o.var);
        match o.obj.call(method, args) {
            Ok(ret) => {
                let mut line = match &expect {
                    Expect::Proc => format!("{text};   // выполнено"),
                    _ => format!("{text} → {}", lit(&ret)),
                };
                let outs: Vec<String> = outs
                    .iter()
                    .map(|&(k, name)| format!("{name} = {}", value(&args[k])))
                    .collect();
                if !outs.is_empty() {
                    let sep = if matches!(expect, Expect::Proc) {
                        ", "
                    } else {
                        "   // "
                    };
                    line.push_str(&format!("{sep}{}", outs.join(", ")));
                }
                println!("{line}");
                if let Expect::Is(e) = expect {
                    self.check(ret == e, &format!("ожидалось {}", lit(&e)));
                }
                ret
            }
            Err(e) => {
                println!("{text} → исключение: {}", e.text);
                self.check(false, "исключение");
                Var::Empty
            }
        }
    }

    /// `Объект.Свойство = Значение;`
    fn set(&mut self, o: &Named, prop: &str, value: &str) {
        println!("{}.{prop} = \"{value}\";", o.var);
        let r = o.obj.set(prop, Var::Str(value.into()));
        self.check(r.is_ok(), &format!("{prop} не записано: {r:?}"));
    }

    /// Reads `Объект.Свойство` and checks it.
    fn get(&mut self, o: &Named, prop: &str, expect: Option<Var>) -> Var {
        let var = o.var;
        match o.obj.get(prop) {
            Ok(v) => {
                println!("{var}.{prop} → {}", lit(&v));
                if let Some(e) = expect {
                    self.check(v == e, &format!("ожидалось {}", lit(&e)));
                }
                v
            }
            Err(e) => {
                println!("{var}.{prop} → исключение: {}", e.text);
                self.check(false, "исключение");
                Var::Empty
            }
        }
    }

    /// Waits for `needles.len()` pushed events of `conn`, prints each as the platform calls
    /// the form's handler, and checks that event k contains every string of `needles[k]`
    /// (in its `Событие` header or its `Данные`).
    fn pushed(&mut self, conn: &Conn, needles: &[&[&str]]) {
        let arrived = conn.wait_events(needles.len(), STEP);
        let events = conn.take_events();
        for e in &events {
            println!("    {}", handler_call(e));
        }
        self.check(
            arrived && events.len() == needles.len(),
            &format!(
                "ожидалось событий: {}, пришло {}",
                needles.len(),
                events.len()
            ),
        );
        for (e, want) in events.iter().zip(needles) {
            for n in *want {
                self.check(
                    e.message.contains(n) || e.data.contains(n),
                    &format!("в событии нет {n}"),
                );
            }
        }
    }

    /// `Пока Объект.ПолучитьСобытие(1000, Событие, Данные) Цикл`: pulls events (printing each)
    /// until one whose header contains every needle. At most 8 events, each waited for up
    /// to 1 s; `Ложь` (nothing within the second, or nothing can come any more) ends it.
    fn pull_event_until(&mut self, o: &Named, needles: &[&str]) {
        for _ in 0..8 {
            let mut args = [Var::I4(1000), s(""), s("")];
            let got = self.call(
                o,
                "ПолучитьСобытие",
                &mut args,
                "1000, Событие, Данные",
                &[(1, "Событие"), (2, "Данные")],
                Expect::Any,
            );
            if got != Var::Bool(true) {
                break;
            }
            let header = args[1].as_str().unwrap_or_default();
            if needles.iter().all(|n| header.contains(n)) {
                return;
            }
        }
        self.check(false, &format!("нет события с {needles:?}"));
    }

    /// `Объект = Неопределено;`: the platform calls `Done()` and `DestroyObject`.
    fn release(&mut self, o: Named) -> Arc<Conn> {
        let Named { mut obj, var } = o;
        let conn = obj.conn();
        let took = obj.done();
        obj.destroy();
        let ms = took.as_secs_f64() * 1000.0;
        if var.is_ascii() {
            println!("{var} = Undefined;   // platform: Done() in {ms:.1} ms, DestroyObject");
        } else {
            println!("{var} = Неопределено;   // платформа: Done() за {ms:.1} мс, DestroyObject");
        }
        conn
    }
}

/// A string parameter as a 1C developer reads it in the debugger: JSON as is, other text in
/// quotes (not doubled: this is a value, not a literal).
fn value(v: &Var) -> String {
    match v {
        Var::Str(s) if s.starts_with('{') => s.clone(),
        Var::Str(s) => format!("\"{s}\""),
        other => lit(other),
    }
}

/// `ВнешнееСобытие(Источник, Событие, Данные)` as the form's handler receives it.
fn handler_call(e: &Event) -> String {
    format!(
        "ВнешнееСобытие(Источник = \"{}\", Событие = {}, Данные = {})",
        e.source,
        value(&Var::Str(e.message.clone())),
        value(&Var::Str(e.data.clone()))
    )
}

fn create(host: &Host, class: &str, opts: HostOptions, var: &'static str) -> Named {
    // An English variable name stands for code written in English 1C syntax.
    let new = if var.is_ascii() { "New" } else { "Новый" };
    println!("{var} = {new}(\"AddIn.WebSocket.{class}\");");
    let obj = host.create(class, opts).unwrap_or_else(|e| {
        println!("!!! {e}");
        std::process::exit(1)
    });
    Named { obj, var }
}

/// The messages both parts send: Latin text, Cyrillic text, bytes that are not UTF-8.
const TEXT: &str = "Hello";
const CYRILLIC: &str = "Привет, мир! Ёлка ЙЦУКЕН";
const BYTES: [u8; 6] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF];
/// `BYTES` in base64, as `Данные` of a pushed binary message.
const BYTES_B64: &str = "AAF/gP7/";

fn s(v: &str) -> Var {
    Var::Str(v.into())
}

/// Part 1: a managed form in a thin client, everything pushed to `ВнешнееСобытие`.
fn thin_client_form(d: &mut Demo, host: &Host) -> Vec<Arc<Conn>> {
    println!(
        "\n=== 1. Форма в тонком клиенте: РежимДоставки = \"События\", всё приходит в ВнешнееСобытие"
    );
    println!("    (эмулятор играет тонкий клиент; строки с отступом — вызовы обработчика формы)\n");
    let server = create(host, "Server", HostOptions::default(), "Сервер");
    d.set(&server, "РежимДоставки", "События");
    d.set(&server, "ИсточникСобытий", "Сервер");
    d.call(
        &server,
        "Запустить",
        &mut [s("127.0.0.1"), Var::I4(0)],
        "\"127.0.0.1\", 0",
        &[],
        Expect::Is(Var::Bool(true)),
    );
    let port = d.get(&server, "Порт", None).as_i64().unwrap_or(0);
    d.check(port > 0, "порт не занят");
    let url = format!("ws://127.0.0.1:{port}/chat");

    let client = create(host, "Client", HostOptions::default(), "Клиент");
    d.set(&client, "РежимДоставки", "События");
    d.set(&client, "ИсточникСобытий", "Клиент");
    d.call(
        &client,
        "Подключиться",
        &mut [s(&url)],
        &lit(&s(&url)),
        &[],
        Expect::Is(Var::Bool(true)),
    );
    let (cc, sc) = (client.obj.conn(), server.obj.conn());
    d.pushed(&cc, &[&[r#""State":"Open""#, r#""Path":"/chat""#]]);
    d.pushed(&sc, &[&[r#""State":"Open""#, r#""Connection":1"#]]);
    d.get(&client, "Статус", Some(Var::I4(1)));
    d.get(&server, "КоличествоСоединений", Some(Var::I4(1)));

    println!("\n// клиент → сервер");
    for text in [TEXT, CYRILLIC] {
        d.call(
            &client,
            "Отправить",
            &mut [s(text)],
            &lit(&s(text)),
            &[],
            Expect::Proc,
        );
        d.pushed(&sc, &[&[r#""Type":"Text""#, r#""Connection":1"#, text]]);
    }
    println!(
        "Двоичные = ПолучитьДвоичныеДанныеИзBase64Строки(\"{BYTES_B64}\");   // {}",
        lit(&Var::Blob(BYTES.to_vec()))
    );
    d.call(
        &client,
        "ОтправитьДвоичныеДанные",
        &mut [Var::Blob(BYTES.to_vec())],
        "Двоичные",
        &[],
        Expect::Proc,
    );
    d.pushed(
        &sc,
        &[&[r#""Type":"Binary""#, r#""Encoding":"base64""#, BYTES_B64]],
    );

    println!("\n// сервер → клиент");
    for text in [TEXT, CYRILLIC] {
        d.call(
            &server,
            "Отправить",
            &mut [Var::I4(1), s(text)],
            &format!("1, {}", lit(&s(text))),
            &[],
            Expect::Is(Var::I4(1)),
        );
        d.pushed(&cc, &[&[r#""Type":"Text""#, text]]);
    }
    d.call(
        &server,
        "ОтправитьДвоичныеДанные",
        &mut [Var::I4(1), Var::Blob(BYTES.to_vec())],
        "1, Двоичные",
        &[],
        Expect::Is(Var::I4(1)),
    );
    d.pushed(&cc, &[&[r#""Type":"Binary""#, BYTES_B64]]);

    println!("\n// закрытие с кодом и причиной");
    d.call(
        &client,
        "Отключиться",
        &mut [Var::I4(4000), s("Форма закрыта")],
        "4000, \"Форма закрыта\"",
        &[],
        Expect::Proc,
    );
    d.pushed(
        &cc,
        &[&[
            r#""State":"Close""#,
            r#""Code":4000"#,
            r#""Reason":"Форма закрыта""#,
        ]],
    );
    d.pushed(
        &sc,
        &[&[
            r#""State":"Close""#,
            r#""Connection":1"#,
            r#""Code":4000"#,
            r#""Reason":"Форма закрыта""#,
        ]],
    );
    d.get(&client, "Статус", Some(Var::I4(0)));
    d.get(&server, "НеДоставлено", Some(Var::I4(0)));
    let conns = vec![d.release(client)];
    d.call(&server, "Остановить", &mut [], "", &[], Expect::Proc);
    [conns, vec![d.release(server)]].concat()
}

/// Part 2: a scheduled job on the 1C server (no external events there), the same traffic
/// pulled with `Принять` / `Получить` / `ПолучитьСобытие`.
fn scheduled_job(d: &mut Demo, host: &Host) -> Vec<Arc<Conn>> {
    println!(
        "\n=== 2. Регламентное задание на сервере 1С: РежимДоставки = \"Опрос\", всё забирается вызовами"
    );
    println!("    (эмулятор играет сервер 1С: внешние события там не доставляются)\n");
    let server = create(host, "Server", HostOptions::server(), "Сервер");
    d.set(&server, "РежимДоставки", "Опрос");
    d.call(
        &server,
        "Запустить",
        &mut [s("127.0.0.1"), Var::I4(0)],
        "\"127.0.0.1\", 0",
        &[],
        Expect::Is(Var::Bool(true)),
    );
    let port = d.get(&server, "Порт", None).as_i64().unwrap_or(0);
    let url = format!("ws://127.0.0.1:{port}/job");
    let client = create(host, "Client", HostOptions::server(), "Клиент");
    d.set(&client, "РежимДоставки", "Опрос");
    d.call(
        &client,
        "Подключиться",
        &mut [s(&url)],
        &lit(&s(&url)),
        &[],
        Expect::Is(Var::Bool(true)),
    );
    d.pull_event_until(&server, &[r#""State":"Open""#, r#""Connection":1"#]);

    println!("\n// клиент → сервер");
    for text in [TEXT, CYRILLIC] {
        d.call(
            &client,
            "Отправить",
            &mut [s(text)],
            &lit(&s(text)),
            &[],
            Expect::Proc,
        );
    }
    d.call(
        &client,
        "ОтправитьДвоичныеДанные",
        &mut [Var::Blob(BYTES.to_vec())],
        "Двоичные",
        &[],
        Expect::Proc,
    );
    let mut id = 0;
    for expected in [s(TEXT), s(CYRILLIC), Var::Blob(BYTES.to_vec())] {
        let mut args = [Var::I4(5000), Var::I4(0), s("")];
        d.call(
            &server,
            "Принять",
            &mut args,
            "5000, ИДКлиента, Данные",
            &[(1, "ИДКлиента"), (2, "Данные")],
            Expect::Is(Var::Bool(true)),
        );
        d.check(
            args[2] == expected,
            &format!("ожидались Данные = {}", lit(&expected)),
        );
        id = args[1].as_i64().unwrap_or(0) as i32;
        d.check(id == 1, "ожидался ИДКлиента = 1");
    }

    println!("\n// сервер → клиент (ответ тому же ИДКлиента)");
    for text in [TEXT, CYRILLIC] {
        d.call(
            &server,
            "Отправить",
            &mut [Var::I4(id), s(text)],
            &format!("ИДКлиента, {}", lit(&s(text))),
            &[],
            Expect::Is(Var::I4(1)),
        );
    }
    d.call(
        &server,
        "ОтправитьДвоичныеДанные",
        &mut [Var::I4(id), Var::Blob(BYTES.to_vec())],
        "ИДКлиента, Двоичные",
        &[],
        Expect::Is(Var::I4(1)),
    );
    for expected in [s(TEXT), s(CYRILLIC), Var::Blob(BYTES.to_vec())] {
        let mut args = [Var::I4(5000), s("")];
        d.call(
            &client,
            "Получить",
            &mut args,
            "5000, Данные",
            &[(1, "Данные")],
            Expect::Is(Var::Bool(true)),
        );
        d.check(
            args[1] == expected,
            &format!("ожидались Данные = {}", lit(&expected)),
        );
    }

    println!("\n// закрытие сервером с кодом и причиной");
    d.call(
        &server,
        "Отключить",
        &mut [Var::I4(id), Var::I4(4001), s("Задание завершено")],
        "ИДКлиента, 4001, \"Задание завершено\"",
        &[],
        Expect::Is(Var::Bool(true)),
    );
    let close = [
        r#""State":"Close""#,
        r#""Code":4001"#,
        r#""Reason":"Задание завершено""#,
    ];
    d.pull_event_until(&client, &close);
    d.pull_event_until(&server, &close);
    let mut args = [Var::I4(1000), s("")];
    d.call(
        &client,
        "Получить",
        &mut args,
        "1000, Данные",
        &[(1, "Данные")],
        Expect::Is(Var::Bool(false)),
    );
    d.get(&client, "Статус", Some(Var::I4(0)));
    let (cc, sc) = (client.obj.conn(), server.obj.conn());
    println!(
        "// вызовов ExternalEvent на сервере 1С: клиент {}, сервер {}",
        cc.external_event_calls(),
        sc.external_event_calls()
    );
    d.check(
        cc.external_event_calls() + sc.external_event_calls() == 0,
        "в режиме Опрос компонента не должна вызывать ExternalEvent",
    );
    let conns = vec![d.release(client)];
    d.call(&server, "Остановить", &mut [], "", &[], Expect::Proc);
    [conns, vec![d.release(server)]].concat()
}

/// Part 3: an exception as 1C code sees it, in a Russian and in an English interface.
fn exceptions(d: &mut Demo, host: &Host) -> Vec<Arc<Conn>> {
    println!(
        "\n=== 3. Исключения: текст на языке интерфейса / exceptions in the interface language\n"
    );
    let mut conns = Vec::new();
    for (opts, var, method, lang) in [
        (HostOptions::default(), "Клиент", "Отправить", "ru"),
        (HostOptions::english(), "Client", "Send", "en"),
    ] {
        let client = create(host, "Client", opts, var);
        match client.obj.call(method, &mut [s(TEXT)]) {
            Ok(_) => d.check(false, "ожидалось исключение"),
            Err(e) => {
                if lang == "ru" {
                    println!(
                        "Попытка {var}.{method}(\"{TEXT}\") → исключение: {}",
                        e.text
                    );
                } else {
                    println!("Try {var}.{method}(\"{TEXT}\") → exception: {}", e.text);
                }
                let cyrillic = e.text.chars().any(|c| ('\u{400}'..='\u{4FF}').contains(&c));
                d.check(cyrillic == (lang == "ru"), "текст не на языке интерфейса");
                let described = client.obj.call("ОписаниеОшибки", &mut []);
                d.check(
                    described.as_ref().ok() == Some(&Var::Str(e.text.clone())),
                    "ОписаниеОшибки() не повторяет текст исключения",
                );
            }
        }
        conns.push(d.release(client));
    }
    conns
}

/// `--members`: every member of both objects, as the platform discovers them.
fn members(host: &Host) {
    for class in ["Client", "Server"] {
        let obj = host
            .create(class, HostOptions::default())
            .unwrap_or_else(|e| {
                println!("!!! {e}");
                std::process::exit(1)
            });
        println!("\nAddIn.WebSocket.{class}: методы / methods");
        for i in 0..obj.n_methods() {
            let ru = obj.method_name(i, 1).unwrap_or_default();
            let en = obj.method_name(i, 0).unwrap_or_default();
            let params: Vec<String> = (0..obj.n_params(i))
                .map(|k| match obj.param_default(i, k) {
                    Some(d) => format!("п{} = {}", k + 1, lit(&d)),
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
        println!("  свойства / properties");
        for i in 0..obj.n_props() {
            let ru = obj.prop_name(i, 1).unwrap_or_default();
            let en = obj.prop_name(i, 0).unwrap_or_default();
            let rw = if obj.is_writable(i) {
                "чтение и запись"
            } else {
                "только чтение"
            };
            println!("    {ru} / {en} ({rw})");
        }
        obj.destroy();
    }
}

fn main() -> ExitCode {
    let started = Instant::now();
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        println!(
            "\n!!! демонстрация идёт дольше {} с: прервана",
            WATCHDOG.as_secs()
        );
        std::process::exit(2);
    });
    let path = ws1c_host::default_library_path();
    println!(
        "// Каждая строка — вызов кода 1С и его результат (→, а после // — выходные параметры)."
    );
    println!(
        "// Строки ВнешнееСобытие(…) — вызовы обработчика формы, которые записал эмулятор платформы.\n"
    );
    println!(
        "ПодключитьВнешнююКомпоненту(\"ОбщийМакет.КомпонентаWebSocket\", \"WebSocket\", ТипВнешнейКомпоненты.Native) → Истина"
    );
    let host = match Host::load(&path) {
        Ok(h) => h,
        Err(e) => {
            println!("!!! {e}: соберите компоненту (cargo build --release -p ws1c-abi)");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "    (эмулятор платформы загрузил {}; классы {})",
        path.display(),
        host.class_names()
    );
    if std::env::args().any(|a| a == "--members") {
        members(&host);
    }

    let mut d = Demo { failures: 0 };
    let mut conns = thin_client_form(&mut d, &host);
    conns.extend(scheduled_job(&mut d, &host));
    conns.extend(exceptions(&mut d, &host));

    println!("\n=== Что осталось платформе / what the platform is left with\n");
    let m = host.mem();
    println!(
        "Память платформы (AllocMemory/FreeMemory): выделено {}, освобождено {}, не возвращено {}, освобождений чужих блоков {}",
        m.allocs, m.frees, m.outstanding, m.unknown_frees
    );
    d.check(m.outstanding == 0, "память не возвращена");
    d.check(m.unknown_frees == 0, "освобождены чужие блоки");
    let after: u64 = conns.iter().map(|c| c.calls_after_done()).sum();
    let violations: usize = conns.iter().map(|c| c.violations().len()).sum();
    println!(
        "Вызовов платформы после Done(): {after} (объектов: {}); нарушений протокола Native API: {violations}",
        conns.len()
    );
    d.check(after == 0, "вызовы после Done()");
    d.check(violations == 0, "нарушения протокола");
    for c in &conns {
        for v in c.violations() {
            println!("    {v}");
        }
    }
    let took = started.elapsed().as_secs_f64();
    if d.failures == 0 {
        println!("\nВсё работает как ожидалось (за {took:.2} с).");
        ExitCode::SUCCESS
    } else {
        println!(
            "\n!!! Не так, как ожидалось: {} (за {took:.2} с).",
            d.failures
        );
        ExitCode::FAILURE
    }
}
