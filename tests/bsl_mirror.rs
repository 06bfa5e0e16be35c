//! The 1C code in `bsl/` cannot run here, so this suite keeps it honest two ways:
//!
//! * mechanically: every `Объект.Член` of a component variable in every `.bsl` file must be a
//!   method or property of that class in the loaded add-in (found through the C ABI as the
//!   platform finds it), called with an argument count the method accepts, and assigned only
//!   if writable; every JSON key and value the common module's event parser looks for must be
//!   one the add-in actually produces;
//! * by hand: each file's call sequence is performed here, through the emulated platform, with
//!   the same arguments (ports excepted: tests never use fixed ports) and the same checks:
//!
//! | bsl file | tests |
//! |---|---|
//! | `WebSocketКомпонента.bsl` (common module) | `common_module_*`, and every test below through it |
//! | `ФормаЧата.bsl` (form, push) | `form_module_push_sequence`, `form_module_reconnect_options` (waits for issue 5) |
//! | `РегламентноеЗаданиеПриемСообщений.bsl` (scheduled job, pull) | `scheduled_job_persistent_server` |
//! | `ПолноеТестирование.bsl` (documented self-test) | `full_self_test` |

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{WsServer, create_with, finish, host, serial};
use ws1c_host::{HostOptions, Obj, Var};

fn s(v: &str) -> Var {
    Var::Str(v.to_owned())
}

// ---- reading the .bsl files ------------------------------------------------------------

fn bsl_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bsl")
}

/// Every `.bsl` file: (file name, text without the BOM).
fn bsl_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(bsl_dir())
        .expect("bsl/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "bsl"))
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("read");
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                bytes.starts_with(b"\xEF\xBB\xBF"),
                "{name}: 1C modules are UTF-8 with a BOM"
            );
            let text = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn bsl(name: &str) -> String {
    bsl_files()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("bsl/{name} is missing"))
        .1
}

/// The code with comments blanked and every string literal replaced by `"<n>"`, plus the
/// literals in order (`""` inside a literal is one quote, as in 1C).
fn tokenize(src: &str) -> (String, Vec<String>) {
    let mut code = String::new();
    let mut literals = Vec::new();
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut lit = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            lit.push('"');
                        }
                        Some('"') | None => break,
                        Some(ch) => lit.push(ch),
                    }
                }
                code.push_str(&format!("\"{}\"", literals.len()));
                literals.push(lit);
            }
            '/' if chars.peek() == Some(&'/') => {
                for ch in chars.by_ref() {
                    if ch == '\n' {
                        code.push('\n');
                        break;
                    }
                }
            }
            _ => code.push(c),
        }
    }
    (code, literals)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// One use of a component object's member in the 1C code.
#[derive(Debug)]
struct Use {
    var: String,
    member: String,
    /// `Some(n)`: a call with `n` arguments; `None`: a property.
    args: Option<usize>,
    /// A property assigned at the start of a statement (`Объект.Свойство = …;`).
    assigned: bool,
    line: usize,
}

/// Variables that hold component objects in `bsl/`, with their class (`None`: either).
const COMPONENT_VARS: [(&str, Option<&str>); 6] = [
    ("Клиент", Some("Client")),
    ("Клиент1", Some("Client")),
    ("Клиент2", Some("Client")),
    ("Сервер", Some("Server")),
    ("Эхо", Some("Server")),
    ("Компонента", None),
];

/// Counts top-level arguments of the call whose `(` is at `open`; `None` if unbalanced.
fn count_args(code: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut commas = 0;
    let mut empty = true;
    for &c in &code[open + 1..] {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' if depth > 0 => depth -= 1,
            ')' => return Some(if empty { 0 } else { commas + 1 }),
            ',' if depth == 0 => commas += 1,
            c if !c.is_whitespace() => {}
            _ => continue,
        }
        empty = false;
    }
    None
}

fn member_uses(src: &str) -> Vec<Use> {
    let (code, _) = tokenize(src);
    let code: Vec<char> = code.chars().collect();
    let mut uses = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !is_ident(code[i]) || (i > 0 && (is_ident(code[i - 1]) || code[i - 1] == '.')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < code.len() && is_ident(code[i]) {
            i += 1;
        }
        let var: String = code[start..i].iter().collect();
        if i >= code.len() || code[i] != '.' || !COMPONENT_VARS.iter().any(|(v, _)| *v == var) {
            continue;
        }
        let m0 = i + 1;
        let mut j = m0;
        while j < code.len() && is_ident(code[j]) {
            j += 1;
        }
        let member: String = code[m0..j].iter().collect();
        let mut k = j;
        while k < code.len() && code[k] == ' ' {
            k += 1;
        }
        let line = code[..start].iter().filter(|&&c| c == '\n').count() + 1;
        let line_start = code[..start]
            .iter()
            .rposition(|&c| c == '\n')
            .map_or(0, |p| p + 1);
        let at_statement_start = code[line_start..start].iter().all(|c| c.is_whitespace());
        let args = (k < code.len() && code[k] == '(').then(|| {
            count_args(&code, k).unwrap_or_else(|| panic!("unbalanced call at line {line}"))
        });
        let assigned = args.is_none()
            && at_statement_start
            && code.get(k) == Some(&'=')
            && code.get(k + 1) != Some(&'=');
        uses.push(Use {
            var,
            member,
            args,
            assigned,
            line,
        });
        i = j;
    }
    uses
}

/// Checks one use against an object of `class` through the ABI; `Err` says what is wrong.
fn check_use(obj: &Obj, u: &Use) -> Result<(), String> {
    match u.args {
        Some(n) => {
            let idx = obj.find_method(&u.member);
            if idx < 0 {
                return Err(format!("no method {}", u.member));
            }
            let total = obj.n_params(idx) as usize;
            let required = (0..total)
                .filter(|&k| obj.param_default(idx, k as i64).is_none())
                .count();
            if n < required || n > total {
                return Err(format!(
                    "{}({n} arguments): takes {required}..={total}",
                    u.member
                ));
            }
        }
        None => {
            let idx = obj.find_prop(&u.member);
            if idx < 0 {
                return Err(format!("no property {}", u.member));
            }
            if u.assigned && !obj.is_writable(idx) {
                return Err(format!("property {} is read-only", u.member));
            }
        }
    }
    Ok(())
}

#[test]
fn every_member_used_in_bsl_exists_with_a_valid_argument_count() {
    let _g = serial();
    let client = create_with("Client", HostOptions::default());
    let server = create_with("Server", HostOptions::default());
    let mut total = 0;
    let mut problems = Vec::new();
    for (name, text) in bsl_files() {
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("//"),
            "{name}: starts with a header comment"
        );
        let uses = member_uses(&text);
        assert!(!uses.is_empty(), "{name}: no component calls found");
        for u in &uses {
            let class = COMPONENT_VARS
                .iter()
                .find(|(v, _)| *v == u.var)
                .and_then(|(_, c)| *c);
            let result = match class {
                Some("Client") => check_use(&client, u),
                Some(_) => check_use(&server, u),
                None => check_use(&client, u).or_else(|_| check_use(&server, u)),
            };
            if let Err(e) = result {
                problems.push(format!("{name}:{}: {}.{}: {e}", u.line, u.var, u.member));
            }
        }
        total += uses.len();
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The scanner itself must keep finding the calls (a broken scanner passes vacuously).
    assert!(total >= 50, "only {total} component member uses found");
    finish(client);
    finish(server);
}

#[test]
fn the_scanner_catches_mistakes() {
    let _g = serial();
    let client = create_with("Client", HostOptions::default());
    let src = "Клиент.Подключиться(\"ws://x\", Параметры(1, 2), 3);\n\
               Клиент.Статус = 1;\n\
               Если Клиент.Статус = 1 Тогда Клиент.Отправлять(\"a, b\"); КонецЕсли;\n\
               // Клиент.НетТакого()\n";
    let uses = member_uses(src);
    let shown: Vec<(String, Option<usize>, bool)> = uses
        .iter()
        .map(|u| (u.member.clone(), u.args, u.assigned))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("Подключиться".into(), Some(3), false),
            ("Статус".into(), None, true),
            ("Статус".into(), None, false),
            ("Отправлять".into(), Some(1), false),
        ]
    );
    assert!(
        check_use(&client, &uses[0])
            .unwrap_err()
            .contains("takes 1..=2")
    );
    assert!(
        check_use(&client, &uses[1])
            .unwrap_err()
            .contains("read-only")
    );
    assert!(check_use(&client, &uses[2]).is_ok());
    assert!(
        check_use(&client, &uses[3])
            .unwrap_err()
            .contains("no method")
    );
    finish(client);
}

#[test]
fn every_bsl_file_attaches_the_same_template_by_the_same_name() {
    let _g = serial();
    let classes = host().class_names();
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifest/MANIFEST.XML"),
    )
    .expect("manifest/MANIFEST.XML");
    assert!(manifest.contains(r#"name="WebSocket""#));
    let mut attaches = 0;
    for (name, text) in bsl_files() {
        let (code, lits) = tokenize(&text);
        for lit in &lits {
            if let Some(class) = lit.strip_prefix("AddIn.WebSocket.") {
                assert!(
                    class.is_empty() || classes.split('|').any(|c| c == class),
                    "{name}: {lit} is not a class of the add-in ({classes})"
                );
            }
            if lit.starts_with("ОбщийМакет.") {
                assert_eq!(lit, "ОбщийМакет.КомпонентаWebSocket", "{name}");
            }
        }
        // ПодключитьВнешнююКомпоненту[Асинх](Местоположение, "WebSocket", …): the name is
        // the second argument, which makes the ProgIDs AddIn.WebSocket.Client / .Server.
        for (pos, _) in code.match_indices("ПодключитьВнешнююКомпоненту")
        {
            let rest = &code[pos..];
            let args = &rest[rest.find('(').unwrap() + 1..];
            let second = args.split(',').nth(1).unwrap().trim();
            let n: usize = second.trim_matches('"').parse().unwrap();
            assert_eq!(lits[n], "WebSocket", "{name}: attach name");
            attaches += 1;
        }
    }
    assert!(attaches >= 3, "{attaches}");
}

// ---- the event parser of the common module ----------------------------------------------

/// Every header the add-in can produce, client and server side, as JSON objects.
fn all_headers() -> Vec<serde_json::Map<String, serde_json::Value>> {
    use ws1c::event::{Event, EventKind};
    let kinds = [
        EventKind::Open {
            address: "127.0.0.1:1".into(),
            path: "/".into(),
            subprotocol: String::new(),
            headers: vec![],
        },
        EventKind::Text("t".into()),
        EventKind::Text("t\0".into()),
        EventKind::Binary(vec![1]),
        EventKind::Close {
            code: 1000,
            reason: "r".into(),
        },
        EventKind::Fail { error: "e".into() },
        EventKind::Reconnecting {
            attempt: 1,
            delay_ms: 500,
        },
        EventKind::Pong(vec![]),
        EventKind::Pong(vec![0xff]),
    ];
    let mut out = Vec::new();
    for conn in [None, Some(7)] {
        for kind in &kinds {
            let ev = Event {
                conn,
                kind: kind.clone(),
            };
            for text in [ev.header(), ev.notification()] {
                let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                out.push(json.as_object().expect("object").clone());
            }
        }
    }
    out
}

#[test]
fn the_event_parser_looks_only_for_keys_and_values_the_add_in_produces() {
    let text = bsl("WebSocketКомпонента.bsl");
    let start = text
        .find("Функция РазобратьСобытие")
        .expect("РазобратьСобытие");
    let end = start + text[start..].find("КонецФункции").expect("end");
    let (_, lits) = tokenize(&text[start..end]);
    // The parser's JSON vocabulary: its Latin literals (the Russian ones are its output).
    let looked_for: BTreeSet<&str> = lits
        .iter()
        .map(String::as_str)
        .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    let headers = all_headers();
    let produced: BTreeSet<&str> = headers
        .iter()
        .flat_map(|h| h.iter().flat_map(|(k, v)| [Some(k.as_str()), v.as_str()]))
        .flatten()
        .collect();
    let unknown: Vec<&&str> = looked_for.difference(&produced).collect();
    assert!(
        unknown.is_empty(),
        "the parser looks for {unknown:?}, which no event has"
    );
    for key in [
        "Event",
        "State",
        "Connection",
        "Type",
        "Open",
        "Close",
        "Fail",
        "Reconnecting",
        "Attempt",
        "DelayMs",
        "Message",
        "Binary",
        "Code",
        "Reason",
        "Error",
        "Address",
        "Path",
        "Pong",
        "Notify",
        "Encoding",
        "base64",
    ] {
        assert!(looked_for.contains(key), "the parser ignores {key}");
    }
}

/// `ПараметрыJSON` keys in a file's `Структура.Вставить("key", …)` / `Новый Структура("a, b", …)`
/// calls, to compare with the JSON a mirror test sends.
fn option_keys(src: &str, function: &str) -> BTreeSet<String> {
    let start = src.find(function).expect("function");
    let end = start + src[start..].find("\nКонец").expect("end");
    let (code, lits) = tokenize(&src[start..end]);
    let mut keys = BTreeSet::new();
    for (pos, pat) in code.match_indices(".Вставить(\"") {
        let n: usize = code[pos + pat.len()..]
            .split('"')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap();
        keys.insert(lits[n].clone());
    }
    for (pos, pat) in code.match_indices("Новый Структура(\"") {
        let n: usize = code[pos + pat.len()..]
            .split('"')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap();
        keys.extend(lits[n].split(',').map(|k| k.trim().to_owned()));
    }
    keys
}

/// Every key of a JSON object text, nested objects included.
fn json_keys(json: &str) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        if let Some(m) = v.as_object() {
            for (k, v) in m {
                out.insert(k.clone());
                walk(v, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&serde_json::from_str(json).expect("JSON"), &mut out);
    out
}

// ---- waiting for pushed events ------------------------------------------------------------

/// Collects the `ExternalEvent`s of `obj` until one whose header contains every `needle`
/// arrives (within 10 s); returns (header, data) of that one. Every event must come from
/// `Источник` "Чат", the form's filter.
fn wait_pushed(obj: &Obj, seen: &mut Vec<ws1c_host::Event>, needles: &[&str]) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new = obj.conn().take_events();
        assert!(new.iter().all(|e| e.source == "Чат"), "{new:?}");
        seen.extend(new);
        if let Some(e) = seen
            .iter()
            .find(|e| needles.iter().all(|n| e.message.contains(n)))
        {
            let found = (e.message.clone(), e.data.clone());
            let seq = e.seq;
            seen.retain(|x| x.seq > seq);
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no event with {needles:?}; got {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- a loopback echo peer -----------------------------------------------------------------

/// tokio-tungstenite echo server on 127.0.0.1:0: echoes text and binary; on the text
/// "разрыв" it drops the TCP connection without a close frame (a network failure).
struct EchoPeer;

impl EchoPeer {
    fn start() -> WsServer {
        use futures_util::{SinkExt, StreamExt};
        WsServer::start(|mut ws| async move {
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() && msg.to_text().unwrap_or_default() == "разрыв" {
                    return; // dropped: no close frame
                }
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        })
    }
}

// ---- WebSocketКомпонента.bsl ----------------------------------------------------------------

#[test]
fn common_module_objects_and_error_text() {
    let _g = serial();
    // НовыйКлиент / НовыйСервер: Новый("AddIn.WebSocket." + Класс) once attached.
    let client = create_with("Client", HostOptions::default());
    let server = create_with("Server", HostOptions::server());
    assert_eq!(client.extension_name(), "Client");
    assert_eq!(server.extension_name(), "Server");
    // ТекстОшибки(Компонента, …): the platform's text + Компонента.ОписаниеОшибки().
    let err = client
        .call("Подключиться", &mut [s("http://127.0.0.1/"), s("")])
        .unwrap_err();
    assert_eq!(
        client.call("ОписаниеОшибки", &mut []).unwrap(),
        s(&err.text)
    );
    assert!(err.text.contains("ws:// или wss://"), "{}", err.text);
    // ПараметрыJSON writes ЗаписатьJSON's one-line form: exactly what Настроить accepts.
    server
        .call_proc(
            "Настроить",
            &mut [s(r#"{"max_connections":100,"allowed_paths":["/ws"]}"#)],
        )
        .unwrap();
    finish(client);
    finish(server);
}

// ---- ФормаЧата.bsl ---------------------------------------------------------------------------

/// The options the form builds (`ПараметрыJSON(Параметры)` of `Подключиться`), verbatim.
const FORM_OPTIONS: &str = r#"{"timeout_ms":5000,"ping_interval_ms":30000,"reconnect":{"enabled":true,"min_delay_ms":500,"max_delay_ms":30000,"max_attempts":0}}"#;

#[test]
fn form_options_in_the_test_are_the_forms() {
    let keys = option_keys(&bsl("ФормаЧата.bsl"), "Асинх Процедура Подключиться");
    assert_eq!(keys, json_keys(FORM_OPTIONS));
}

/// The form's `Подключиться`, as far as setting up the object.
fn form_client() -> Obj {
    let c = create_with("Client", HostOptions::default()); // a thin client: events delivered
    c.set("РежимДоставки", s("События")).unwrap();
    c.set("ИсточникСобытий", s("Чат")).unwrap();
    c
}

#[test]
fn form_module_push_sequence() {
    let _g = serial();
    let peer = EchoPeer::start();
    let url = format!("ws://127.0.0.1:{}/chat", peer.port);
    let c = form_client();
    let mut seen = Vec::new();

    // Подключиться: connect; the handler sees "Открытие" with the address and the path.
    assert_eq!(
        c.call("Подключиться", &mut [s(&url), s(FORM_OPTIONS)])
            .unwrap(),
        Var::Bool(true)
    );
    let (header, data) = wait_pushed(&c, &mut seen, &[r#""State":"Open""#]);
    assert!(
        header.contains(&format!(r#""Address":"127.0.0.1:{}""#, peer.port)),
        "{header}"
    );
    assert!(header.contains(r#""Path":"/chat""#), "{header}");
    assert!(data.starts_with('{'), "Подробности are JSON: {data}");

    // Отправить: Статус = 1, then the text; the echo arrives as "Сообщение".
    assert_eq!(c.get("Статус").unwrap(), Var::I4(1));
    c.call("Отправить", &mut [s("Привет, мир")]).unwrap();
    let (header, data) = wait_pushed(&c, &mut seen, &[r#""Event":"Message""#]);
    assert_eq!(header, r#"{"Event":"Message","Type":"Text"}"#);
    assert_eq!(data, "Привет, мир");

    // A network failure: the handler sees "Закрытие" (1006) or "Ошибка", Статус leaves 1,
    // and the form's Отправить takes its "Нет подключения" branch.
    c.call("Отправить", &mut [s("разрыв")]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let header = loop {
        let new = c.conn().take_events();
        assert!(new.iter().all(|e| e.source == "Чат"), "{new:?}");
        seen.extend(new);
        if let Some(e) = seen.iter().find(|e| {
            e.message.contains(r#""State":"Close""#) || e.message.contains(r#""State":"Fail""#)
        }) {
            break e.message.clone();
        }
        assert!(Instant::now() < deadline, "no close or fail: {seen:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    seen.clear();
    assert!(!header.contains(r#""Code":1000"#), "{header}");
    assert_ne!(c.get("Статус").unwrap(), Var::I4(1));

    // Подключиться again, then Отключиться: "Закрытие" with 1000.
    c.call("Подключиться", &mut [s(&url), s(FORM_OPTIONS)])
        .unwrap();
    wait_pushed(&c, &mut seen, &[r#""State":"Open""#]);
    c.call("Отключиться", &mut []).unwrap();
    let (header, _) = wait_pushed(&c, &mut seen, &[r#""State":"Close""#]);
    assert!(header.contains(r#""Code":1000"#), "{header}");

    // Подключиться to nothing: an exception, and ТекстОшибки has the add-in's reason.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = c
        .call(
            "Подключиться",
            &mut [s(&format!("ws://127.0.0.1:{free}/chat")), s(FORM_OPTIONS)],
        )
        .unwrap_err();
    assert!(err.text.contains("отклонил подключение"), "{}", err.text);
    assert_eq!(c.call("ОписаниеОшибки", &mut []).unwrap(), s(&err.text));

    // ПриЗакрытии: Отключиться on a client that is not connected raises nothing.
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

/// The form's exact options, reconnection included: a lost connection comes back.
#[test]
fn form_module_reconnect_options() {
    let _g = serial();
    let peer = EchoPeer::start();
    let url = format!("ws://127.0.0.1:{}/chat", peer.port);
    let c = form_client();
    let mut seen = Vec::new();
    assert_eq!(
        c.call("Подключиться", &mut [s(&url), s(FORM_OPTIONS)])
            .unwrap(),
        Var::Bool(true)
    );
    wait_pushed(&c, &mut seen, &[r#""State":"Open""#]);
    // The peer drops the connection: "Переподключение" (attempt 1 after about min_delay_ms),
    // then "Открытие" again, and the form can send as before.
    c.call("Отправить", &mut [s("разрыв")]).unwrap();
    let (header, data) = wait_pushed(&c, &mut seen, &[r#""State":"Reconnecting""#]);
    assert!(header.contains(r#""Attempt":1"#), "{header}");
    let delay: u64 = header
        .split(r#""DelayMs":"#)
        .nth(1)
        .and_then(|d| d.trim_end_matches('}').parse().ok())
        .expect("DelayMs");
    assert!((1..=30000).contains(&delay), "{header}");
    assert_eq!(data, "{}");
    wait_pushed(&c, &mut seen, &[r#""State":"Open""#]);
    assert_eq!(c.get("Статус").unwrap(), Var::I4(1));
    c.call("Отправить", &mut [s("снова")]).unwrap();
    let (_, data) = wait_pushed(&c, &mut seen, &[r#""Event":"Message""#]);
    assert_eq!(data, "снова");
    // Отключиться ends reconnection: a 1000 close and no Reconnecting after it.
    c.call("Отключиться", &mut []).unwrap();
    let (header, _) = wait_pushed(&c, &mut seen, &[r#""State":"Close""#]);
    assert!(header.contains(r#""Code":1000"#), "{header}");
    std::thread::sleep(Duration::from_millis(1500));
    seen.extend(c.conn().take_events());
    assert!(
        !seen.iter().any(|e| e.message.contains("Reconnecting")),
        "{seen:?}"
    );
    finish(c);
}

// ---- РегламентноеЗаданиеПриемСообщений.bsl -------------------------------------------------

/// The options the job builds for `Настроить`, verbatim.
const JOB_OPTIONS: &str = r#"{"persistent":{"name":"касса","idle_expiry_ms":600000},"max_connections":100,"ping_interval_ms":30000,"idle_timeout_ms":120000}"#;

#[test]
fn job_options_in_the_test_are_the_jobs() {
    let keys = option_keys(
        &bsl("РегламентноеЗаданиеПриемСообщений.bsl"),
        "Процедура ОбработатьВходящие",
    );
    assert_eq!(keys, json_keys(JOB_OPTIONS));
}

/// One run of `ОбработатьВходящие` on the 1C server, its loop bounded by `messages` answered
/// instead of 55 s; `on_port` learns the port once it listens. Returns the port.
fn job_run(port: u16, messages: usize, on_port: impl FnOnce(u16)) -> u16 {
    let server = create_with("Server", HostOptions::server());
    server.set("РежимДоставки", s("Опрос")).unwrap();
    server
        .call_proc("Настроить", &mut [s(JOB_OPTIONS)])
        .unwrap();
    assert_eq!(
        server
            .call("Запустить", &mut [s("127.0.0.1"), Var::I4(port.into())])
            .unwrap(),
        Var::Bool(true)
    );
    let port = server.get("Порт").unwrap().as_i64().unwrap() as u16;
    on_port(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut answered = 0;
    while answered < messages {
        assert!(Instant::now() < deadline, "the job got {answered} messages");
        let mut args = [Var::I4(1000), s(""), s("")];
        if server.call("ПолучитьСобытие", &mut args).unwrap() != Var::Bool(true) {
            continue;
        }
        let header = args[1].as_str().unwrap().to_owned();
        if header.starts_with(r#"{"Event":"Message""#) {
            // Разбор.Соединение is the "Connection" of the header; Разбор.Текст the data.
            assert!(header.contains(r#""Connection":1"#), "{header}");
            let reply = format!("получено: {}", args[2].as_str().unwrap());
            assert_eq!(
                server
                    .call("Отправить", &mut [Var::I4(1), s(&reply)])
                    .unwrap(),
                Var::I4(1)
            );
            answered += 1;
        } else {
            assert!(header.contains(r#""State":"Open""#), "{header}");
        }
    }
    // The branch for a client that has gone: Отправить returns 0, no exception.
    assert_eq!(
        server
            .call("Отправить", &mut [Var::I4(99), s("x")])
            .unwrap(),
        Var::I4(0)
    );
    finish(server); // the job's session ends; Остановить() is not called
    port
}

type Till = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn till_connect(rt: &tokio::runtime::Runtime, port: u16) -> Till {
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/till"), tcp)
            .await
            .expect("handshake")
            .0
    })
}

fn till_send(rt: &tokio::runtime::Runtime, ws: &mut Till, text: &str) {
    use futures_util::SinkExt;
    rt.block_on(ws.send(tokio_tungstenite::tungstenite::Message::text(text)))
        .expect("send");
}

fn till_receive(rt: &tokio::runtime::Runtime, ws: &mut Till) -> String {
    use futures_util::StreamExt;
    rt.block_on(async {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply in time")
            .expect("open")
            .expect("ok");
        msg.into_text().expect("text").to_string()
    })
}

#[test]
fn scheduled_job_persistent_server() {
    let _g = serial();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // First run: the job starts the server "касса"; a till connects and sends.
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let first = std::thread::spawn(move || job_run(0, 1, |p| port_tx.send(p).unwrap()));
    let port = port_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the job started the server");
    let mut till = till_connect(&rt, port);
    till_send(&rt, &mut till, "заказ 1");
    assert_eq!(till_receive(&rt, &mut till), "получено: заказ 1");
    assert_eq!(first.join().unwrap(), port);

    // Between runs: no object, the server keeps the connection and what arrives.
    till_send(&rt, &mut till, "заказ 2");
    std::thread::sleep(Duration::from_millis(200));

    // Next run: a new object attaches by name (same interface and port) and answers what
    // arrived in between, on the same ИДКлиента.
    assert_eq!(job_run(port, 1, |_| {}), port);
    assert_eq!(till_receive(&rt, &mut till), "получено: заказ 2");

    // Остановить() really stops it (the job never does; the test must).
    let server = create_with("Server", HostOptions::server());
    server
        .call_proc("Настроить", &mut [s(JOB_OPTIONS)])
        .unwrap();
    server
        .call("Запустить", &mut [s("127.0.0.1"), Var::I4(port.into())])
        .unwrap();
    server.call_proc("Остановить", &mut []).unwrap();
    finish(server);
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

// ---- ПолноеТестирование.bsl -------------------------------------------------------------------

fn receive_client(c: &Obj, timeout: i32) -> Option<Var> {
    let mut args = [Var::I4(timeout), s("")];
    (c.call("Принять", &mut args).unwrap() == Var::Bool(true)).then(|| args[1].clone())
}

fn receive_server(srv: &Obj, timeout: i32) -> Option<(i64, Var)> {
    let mut args = [Var::I4(timeout), Var::I4(0), s("")];
    (srv.call("Принять", &mut args).unwrap() == Var::Bool(true))
        .then(|| (args[1].as_i64().unwrap(), args[2].clone()))
}

#[test]
fn full_self_test() {
    let _g = serial();
    let app = HostOptions::default; // a thin client, where Авто would push
    let addr = "127.0.0.1";

    // ШАГ 0: the echo server.
    let echo = create_with("Server", app());
    echo.set("РежимДоставки", s("Опрос")).unwrap();
    echo.call("Запустить", &mut [s(addr), Var::I4(0)]).unwrap();
    let url = format!(
        "ws://{addr}:{}/echo",
        echo.get("Порт").unwrap().as_i64().unwrap()
    );

    // ШАГ 1: the client.
    let client = create_with("Client", app());
    client.set("РежимДоставки", s("Опрос")).unwrap();
    client.call("Подключиться", &mut [s(&url)]).unwrap();
    assert_eq!(client.get("Статус").unwrap(), Var::I4(1));
    assert_eq!(client.get("Сервер").unwrap(), s(&url));
    client.call("Подключиться", &mut [s(&url)]).unwrap_err();
    let text = client.call("ОписаниеОшибки", &mut []).unwrap();
    assert!(text.as_str().unwrap().contains("Подключение уже выполнено"));

    client.call("Отправить", &mut [s("ase1ЦУ")]).unwrap();
    let (id, data) = receive_server(&echo, 5000).expect("echo receives");
    assert_eq!(data, s("ase1ЦУ"));
    assert_eq!(
        echo.call("Отправить", &mut [Var::I4(id as i32), data])
            .unwrap(),
        Var::I4(1)
    );
    assert_eq!(receive_client(&client, 5000), Some(s("ase1ЦУ")));
    let t = Instant::now();
    assert_eq!(receive_client(&client, 3000), None);
    assert!(t.elapsed() >= Duration::from_millis(2900));

    let bytes = "ase1ЦУ".as_bytes().to_vec();
    client
        .call("ОтправитьДвоичныеДанные", &mut [Var::Blob(bytes.clone())])
        .unwrap();
    let (id, data) = receive_server(&echo, 5000).expect("binary");
    assert_eq!(data, Var::Blob(bytes.clone()));
    echo.call("ОтправитьДвоичныеДанные", &mut [Var::I4(id as i32), data])
        .unwrap();
    assert_eq!(receive_client(&client, 5000), Some(Var::Blob(bytes)));

    client.call("Отключиться", &mut []).unwrap();
    client.call("Отключиться", &mut []).unwrap();
    assert_eq!(client.get("Статус").unwrap(), Var::I4(0));
    finish(client);
    echo.call_proc("Остановить", &mut []).unwrap();
    finish(echo);

    // ШАГ 2: the server and two clients.
    let server = create_with("Server", app());
    server.set("РежимДоставки", s("Опрос")).unwrap();
    server
        .call("Запустить", &mut [s(addr), Var::I4(0)])
        .unwrap();
    let port = server.get("Порт").unwrap().as_i64().unwrap();
    let c1 = create_with("Client", app());
    let c2 = create_with("Client", app());
    c1.set("РежимДоставки", s("Опрос")).unwrap();
    c2.set("РежимДоставки", s("Опрос")).unwrap();
    let base = format!("ws://{addr}:{port}");
    c1.call("Подключиться", &mut [s(&format!("{base}/first"))])
        .unwrap();
    c2.call("Подключиться", &mut [s(&format!("{base}/testadr"))])
        .unwrap();

    c1.call("Отправить", &mut [s("ase1ЙЦУ")]).unwrap();
    let (id, data) = receive_server(&server, 5000).expect("server receives");
    assert_eq!((id, data), (1, s("ase1ЙЦУ")));
    assert_eq!(server.get("КоличествоСоединений").unwrap(), Var::I4(2));
    assert!(
        server
            .get("Соединения")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("1: 127.0.0.1:")
    );

    assert_eq!(
        server
            .call("Отправить", &mut [Var::I4(2), s("только второму")])
            .unwrap(),
        Var::I4(1)
    );
    assert_eq!(receive_client(&c2, 5000), Some(s("только второму")));
    assert_eq!(
        server.call("ОтправитьВсем", &mut [s("всем")]).unwrap(),
        Var::I4(2)
    );
    assert_eq!(receive_client(&c1, 5000), Some(s("всем")));

    assert_eq!(
        server.call("Отключить", &mut [Var::I4(id as i32)]).unwrap(),
        Var::Bool(true)
    );
    assert_eq!(receive_client(&c1, 5000), None);

    finish(c1);
    finish(c2);
    server.call_proc("Остановить", &mut []).unwrap();
    finish(server);
}
