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
//! | `WebSocketКомпонента.bsl` (common module) | `common_module_*`, `the_common_module_asks_for_the_asynchronous_attach_on_the_client`, and every test below through it |
//! | `WebSocketКомпонентаКлиент.bsl` (common module, 8.3.18+ `Асинх`) | `client_only_language_stays_in_client_code_and_asynch_in_its_own_module`, `a_refused_installation_is_handled` |
//! | `ФормаЧата.bsl` (form, push) | `form_module_push_sequence`, `form_module_reconnect_options`, `a_refused_installation_is_handled` |
//! | `РегламентноеЗаданиеПриемСообщений.bsl` (scheduled job, pull) | `scheduled_job_persistent_server` |
//! | `РегламентноеЗаданиеСлушатель.bsl` (scheduled job, pull, persistent client) | `scheduled_job_listener_*` |
//! | `ФормаSocketIO.bsl` (form, push, `AddIn.WebSocket.SocketIO`) | `socketio_form_push_sequence` |
//! | `РегламентноеЗаданиеSocketIO.bsl` (scheduled job, pull, `AddIn.WebSocket.SocketIO`) | `socketio_scheduled_job` |
//! | `ПолноеТестирование.bsl` (documented self-test) | `full_self_test_thin_client`, `full_self_test_english_interface`, `full_self_test_server_context` |
//!
//! and the rules a 1C developer reads the code by, checked on every file: the header names
//! the module type (common module with its flags, form module) and a form's every unit has
//! a compile directive; the code each context compiles (`#Если`, `&НаКлиенте`) never attaches
//! synchronously on the client and uses no client-only language on the server; calls between
//! the modules and notification handlers exist, exported, with the right parameters; a
//! refused installation is handled; user-facing texts are in `НСтр` with `ru` and `en`, and no
//! code matches an error's text (`every_bsl_file_states_*`, `client_code_*`,
//! `client_only_language_*`, `every_call_between_*`, `a_refused_installation_is_handled`,
//! `user_facing_texts_*`, `the_rule_checks_catch_mistakes`).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{WsServer, client_receive, create_with, finish, host, s, serial, server_receive};
use ws1c_host::{HostOptions, Obj, Var};

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
const COMPONENT_VARS: [(&str, Option<&str>); 7] = [
    ("Клиент", Some("Client")),
    ("Сокет", Some("SocketIO")),
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
    let sio = create_with("SocketIO", HostOptions::default());
    let mut total = 0;
    let mut problems = Vec::new();
    for (name, text) in bsl_files() {
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("//"),
            "{name}: starts with a header comment"
        );
        let uses = member_uses(&text);
        // A file that creates component objects uses them (WebSocketКомпонентаКлиент only
        // attaches the add-in).
        let creates = ["Новый(", "НовыйКлиент(", "НовыйСервер(", "НовыйSocketIO("]
            .iter()
            .any(|n| text.contains(n));
        assert!(
            !creates || !uses.is_empty(),
            "{name}: no component calls found"
        );
        for u in &uses {
            let class = COMPONENT_VARS
                .iter()
                .find(|(v, _)| *v == u.var)
                .and_then(|(_, c)| *c);
            let result = match class {
                Some("Client") => check_use(&client, u),
                Some("SocketIO") => check_use(&sio, u),
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
    finish(sio);
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
        // ПодключитьВнешнююКомпоненту[Асинх](Местоположение, "WebSocket", …) and
        // НачатьПодключениеВнешнейКомпоненты(Оповещение, Местоположение, "WebSocket", …): the
        // name makes the ProgIDs AddIn.WebSocket.Client / .Server.
        for (function, at) in [
            ("ПодключитьВнешнююКомпоненту", 1),
            ("ПодключитьВнешнююКомпонентуАсинх", 1),
            ("НачатьПодключениеВнешнейКомпоненты", 2),
        ] {
            for open in calls_of(&code, function) {
                let args = call_args(&code, open);
                assert_eq!(
                    literal(&args[at], &lits),
                    Some("WebSocket"),
                    "{name}: {function}"
                );
                assert!(
                    args[at - 1].ends_with("Местоположение()"),
                    "{name}: {function}"
                );
                attaches += 1;
            }
        }
    }
    assert!(attaches >= 5, "{attaches}");
}

// ---- module types, compilation contexts and the rules of the 1C language ------------------

/// A module's kind, as the first lines of its header comment declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Module {
    /// `// Общий модуль Имя.` then `// Флаги: …` (the common module's check boxes).
    Common {
        name: String,
        client: bool,
        server: bool,
    },
    /// `// Модуль формы: …`: every procedure, function and variable carries a directive.
    Form,
}

/// Where code is compiled: a thin client, or the 1C server (for everything these files use,
/// an external connection is the server's case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Client,
    Server,
}

/// The check boxes of a common module, as the configurator names them.
const FLAGS: [&str; 6] = [
    "Клиент (управляемое приложение)",
    "Сервер",
    "Внешнее соединение",
    "Вызов сервера",
    "Привилегированный",
    "Глобальный",
];

fn module_of(file: &str, text: &str) -> Module {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    if let Some(rest) = first.strip_prefix("// Общий модуль ") {
        let name = rest.trim_end_matches('.').trim().to_owned();
        assert!(
            !name.is_empty() && name.chars().all(is_ident),
            "{file}: module name {name:?}"
        );
        let flags = lines
            .next()
            .and_then(|l| l.strip_prefix("// Флаги: "))
            .unwrap_or_else(|| panic!("{file}: the second line lists the flags: // Флаги: …"));
        let flags: Vec<&str> = flags.trim_end_matches('.').split(", ").collect();
        for f in &flags {
            assert!(FLAGS.contains(f), "{file}: unknown flag {f:?}");
        }
        Module::Common {
            name,
            client: flags.contains(&FLAGS[0]),
            server: flags.contains(&FLAGS[1]),
        }
    } else if first.starts_with("// Модуль формы: ") {
        Module::Form
    } else {
        panic!(
            "{file}: the first line names the module type (`// Общий модуль Имя.` or \
             `// Модуль формы: …`), not {first:?}"
        )
    }
}

/// Every `.bsl` file with its module kind.
fn modules() -> Vec<(String, String, Module)> {
    bsl_files()
        .into_iter()
        .map(|(name, text)| {
            let m = module_of(&name, &text);
            (name, text, m)
        })
        .collect()
}

/// The file of the common module `name`.
fn common_module<'a>(
    all: &'a [(String, String, Module)],
    name: &str,
) -> Option<&'a (String, String, Module)> {
    all.iter()
        .find(|(_, _, m)| matches!(m, Module::Common { name: n, .. } if n == name))
}

/// Truth of a preprocessor symbol in `ctx`. An unknown symbol fails the test: a new one is
/// added here deliberately, with its meaning.
fn pp_symbol(sym: &str, ctx: Ctx) -> bool {
    const CLIENT: [&str; 8] = [
        "клиент",
        "наклиенте",
        "тонкийклиент",
        "вебклиент",
        "толстыйклиентуправляемоеприложение",
        "толстыйклиентобычноеприложение",
        "мобильноеприложениеклиент",
        "мобильныйклиент",
    ];
    const SERVER: [&str; 4] = [
        "сервер",
        "насервере",
        "внешнеесоединение",
        "мобильноеприложениесервер",
    ];
    let s = sym.to_lowercase();
    assert!(
        CLIENT.contains(&s.as_str()) || SERVER.contains(&s.as_str()),
        "unknown preprocessor symbol {sym}"
    );
    match ctx {
        Ctx::Client => ["клиент", "наклиенте", "тонкийклиент"].contains(&s.as_str()),
        Ctx::Server => ["сервер", "насервере"].contains(&s.as_str()),
    }
}

/// Evaluates the condition of `#Если … Тогда` (`И`, `ИЛИ`, `НЕ`, parentheses) in `ctx`.
fn pp_condition(expr: &str, ctx: Ctx) -> bool {
    fn or(t: &[String], p: &mut usize, ctx: Ctx) -> bool {
        let mut v = and(t, p, ctx);
        while t.get(*p).is_some_and(|x| x == "или") {
            *p += 1;
            v |= and(t, p, ctx);
        }
        v
    }
    fn and(t: &[String], p: &mut usize, ctx: Ctx) -> bool {
        let mut v = not(t, p, ctx);
        while t.get(*p).is_some_and(|x| x == "и") {
            *p += 1;
            v &= not(t, p, ctx);
        }
        v
    }
    fn not(t: &[String], p: &mut usize, ctx: Ctx) -> bool {
        let tok = t.get(*p).cloned().unwrap_or_default();
        *p += 1;
        match tok.as_str() {
            "не" => !not(t, p, ctx),
            "(" => {
                let v = or(t, p, ctx);
                assert_eq!(t.get(*p).map(String::as_str), Some(")"), "unbalanced #Если");
                *p += 1;
                v
            }
            sym => pp_symbol(sym, ctx),
        }
    }
    let spaced = expr.replace('(', " ( ").replace(')', " ) ").to_lowercase();
    let tokens: Vec<String> = spaced.split_whitespace().map(str::to_owned).collect();
    let mut p = 0;
    let v = or(&tokens, &mut p, ctx);
    assert_eq!(p, tokens.len(), "cannot read #Если {expr}");
    v
}

/// A compile directive of a form module: where the unit after it is compiled.
fn directive_compiles_in(directive: &str, ctx: Ctx) -> bool {
    match (directive, ctx) {
        ("&НаКлиенте" | "&НаКлиентеНаСервереБезКонтекста", Ctx::Client) => {
            true
        }
        (
            "&НаСервере" | "&НаСервереБезКонтекста" | "&НаКлиентеНаСервереБезКонтекста",
            Ctx::Server,
        ) => true,
        ("&НаКлиенте" | "&НаСервере" | "&НаСервереБезКонтекста", _) => {
            false
        }
        (other, _) => panic!("unknown compile directive {other}"),
    }
}

/// A line that starts a procedure, a function or a module variable.
fn starts_unit(line: &str) -> bool {
    let l = line.trim_start().to_lowercase();
    let l = l.strip_prefix("асинх ").unwrap_or(&l);
    l.starts_with("процедура ") || l.starts_with("функция ") || l.starts_with("перем ")
}

/// The text of a module as compiled in `ctx`: lines of other contexts (inactive `#Если`
/// branches; form units whose directive is for the other side) blanked, so line numbers
/// stay. `None` if the module is not compiled in `ctx` at all (a common module without the
/// flag).
fn compiled(text: &str, module: &Module, ctx: Ctx) -> Option<String> {
    let flagged = |m: &Module| match (m, ctx) {
        (Module::Common { client, .. }, Ctx::Client) => *client,
        (Module::Common { server, .. }, Ctx::Server) => *server,
        (Module::Form, _) => true,
    };
    if !flagged(module) {
        return None;
    }
    // One level per open #Если: (enclosing level active, some branch taken, this branch active).
    let mut levels: Vec<(bool, bool, bool)> = Vec::new();
    let mut directive: Option<String> = None;
    let (mut in_unit, mut unit_kept) = (false, true);
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let active = levels.last().is_none_or(|l| l.2);
        if let Some(rest) = t.strip_prefix('#') {
            let (kw, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            let cond = || pp_condition(arg.trim().trim_end_matches("Тогда"), ctx);
            match kw.to_lowercase().as_str() {
                "если" => {
                    let c = cond();
                    levels.push((active, c, active && c));
                }
                "иначеесли" => {
                    let c = cond();
                    let l = levels.last_mut().expect("#ИначеЕсли without #Если");
                    l.2 = l.0 && !l.1 && c;
                    l.1 |= c;
                }
                "иначе" => {
                    let l = levels.last_mut().expect("#Иначе without #Если");
                    l.2 = l.0 && !l.1;
                    l.1 = true;
                }
                "конецесли" => {
                    levels.pop().expect("#КонецЕсли without #Если");
                }
                "область" | "конецобласти" => {}
                other => panic!("unknown preprocessor instruction #{other}"),
            }
            out.push("");
            continue;
        }
        if !active {
            out.push("");
            continue;
        }
        let mut keep = true;
        if *module == Module::Form {
            if t.starts_with('&') {
                directive = Some(t.to_owned());
                out.push("");
                continue;
            }
            if starts_unit(t) {
                // A form's unit without a directive is compiled on the server.
                let d = directive.take().unwrap_or_else(|| "&НаСервере".into());
                unit_kept = directive_compiles_in(&d, ctx);
                in_unit = !t.to_lowercase().starts_with("перем ");
                keep = unit_kept;
            } else if in_unit {
                keep = unit_kept;
                let l = t.to_lowercase();
                if l.starts_with("конецпроцедуры") || l.starts_with("конецфункции")
                {
                    in_unit = false;
                }
            }
        }
        out.push(if keep { line } else { "" });
    }
    assert!(levels.is_empty(), "#Если without #КонецЕсли");
    Some(out.join("\n"))
}

/// The identifiers of `code` (as [`tokenize`] leaves it) with their byte offsets.
fn words(code: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in code
        .char_indices()
        .chain(std::iter::once((code.len(), ' ')))
    {
        match (start, is_ident(c)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                // A literal placeholder "7" is not an identifier.
                if !code[s..i].chars().all(|c| c.is_ascii_digit()) {
                    out.push((s, &code[s..i]));
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Offsets of the `(` of every call of `name` (a whole identifier, not after a `.`).
fn calls_of(code: &str, name: &str) -> Vec<usize> {
    words(code)
        .into_iter()
        .filter(|&(pos, w)| w == name && !code[..pos].ends_with('.'))
        .filter_map(|(pos, w)| {
            let after = pos + w.len();
            let open = after + (code[after..].len() - code[after..].trim_start().len());
            code[open..].starts_with('(').then_some(open)
        })
        .collect()
}

/// The top-level arguments of the call whose `(` is at `open`, trimmed.
fn call_args(code: &str, open: usize) -> Vec<String> {
    let mut depth = 0;
    let mut args = vec![String::new()];
    for c in code[open + 1..].chars() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(String::new());
                continue;
            }
            _ => {}
        }
        args.last_mut().unwrap().push(c);
    }
    let args: Vec<String> = args.into_iter().map(|a| a.trim().to_owned()).collect();
    if args.len() == 1 && args[0].is_empty() {
        Vec::new()
    } else {
        args
    }
}

/// The offset of the `)` that closes the `(` at `open` (the end of the code if none).
fn closing_paren(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in code[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return open + i,
            ')' => depth -= 1,
            _ => {}
        }
    }
    code.len()
}

/// The literal an argument is, if it is one placeholder `"n"`.
fn literal<'a>(arg: &str, lits: &'a [String]) -> Option<&'a str> {
    let n: usize = arg.strip_prefix('"')?.strip_suffix('"')?.parse().ok()?;
    lits.get(n).map(String::as_str)
}

/// One procedure or function of a module (from tokenized code).
#[derive(Debug)]
struct Proc {
    name: String,
    params: Vec<String>,
    export: bool,
    /// Offsets of its body in the code.
    body: std::ops::Range<usize>,
}

fn procedures(code: &str) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut open: Option<Proc> = None;
    for line in code.split_inclusive('\n') {
        let t = line.trim();
        let lower = t.to_lowercase();
        if open.is_none() && starts_unit(t) && !lower.starts_with("перем ") {
            let head = t.split_once(' ').map(|(_, r)| r).unwrap_or_default();
            let head = head
                .strip_prefix("Процедура ")
                .or_else(|| head.strip_prefix("Функция "))
                .unwrap_or(head);
            let (name, rest) = head.split_once('(').expect("a parameter list");
            let (params, tail) = rest.split_once(')').expect("a parameter list on one line");
            open = Some(Proc {
                name: name.trim().to_owned(),
                params: params
                    .split(',')
                    .map(|p| p.trim().trim_start_matches("Знач ").to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
                export: tail.contains("Экспорт"),
                body: offset + line.len()..0,
            });
        } else if (lower.starts_with("конецпроцедуры") || lower.starts_with("конецфункции"))
            && let Some(mut p) = open.take()
        {
            p.body.end = offset;
            out.push(p);
        }
        offset += line.len();
    }
    out
}

/// Whether offset `pos` of `code` lies between `Попытка` and its `Исключение`.
fn inside_try(code: &str, pos: usize) -> bool {
    let mut stack: Vec<bool> = Vec::new(); // true while in the Попытка part
    for (at, w) in words(code) {
        if at >= pos {
            break;
        }
        if code[..at].ends_with('.') {
            continue; // a member (Разбор.Попытка), not a keyword
        }
        match w {
            "Попытка" => stack.push(true),
            "Исключение" => {
                if let Some(top) = stack.last_mut() {
                    *top = false;
                }
            }
            "КонецПопытки" => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.last() == Some(&true)
}

/// The parts of an `НСтр` string: (language code, text), `''` read as one apostrophe.
fn nstr_parts(s: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (code, after) = rest.split_once('=').unwrap_or_else(|| panic!("НСтр {s:?}"));
        let after = after
            .trim_start()
            .strip_prefix('\'')
            .unwrap_or_else(|| panic!("НСтр {s:?}"));
        let mut text = String::new();
        let mut chars = after.char_indices().peekable();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|&(_, n)| n == '\'') {
                    chars.next();
                } else {
                    end = i + 1;
                    break;
                }
            }
            text.push(c);
        }
        parts.push((code.trim().to_owned(), text));
        rest = after[end..]
            .trim_start()
            .trim_start_matches(';')
            .trim_start();
    }
    parts
}

fn has_cyrillic(s: &str) -> bool {
    s.chars().any(|c| ('\u{400}'..='\u{4FF}').contains(&c))
}

#[test]
fn every_bsl_file_states_its_module_type_and_directives() {
    let all = modules();
    assert!(all.iter().any(|(_, _, m)| *m == Module::Form));
    for (file, text, module) in &all {
        let (code, _) = tokenize(text);
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            match module {
                Module::Common { .. } => assert!(
                    !t.starts_with('&'),
                    "{file}:{}: a common module has no compile directives",
                    i + 1
                ),
                Module::Form if starts_unit(t) => {
                    let before = lines[..i]
                        .iter()
                        .rev()
                        .map(|l| l.trim())
                        .find(|l| !l.is_empty());
                    assert!(
                        before.is_some_and(|b| b.starts_with('&')),
                        "{file}:{}: `{t}` has no compile directive",
                        i + 1
                    );
                }
                Module::Form => {}
            }
        }
        // Every file compiles in at least one context, with balanced #Если.
        assert!(
            compiled(text, module, Ctx::Client).is_some()
                || compiled(text, module, Ctx::Server).is_some(),
            "{file}"
        );
    }
}

/// Synchronous `ПодключитьВнешнююКомпоненту` / `УстановитьВнешнююКомпоненту` raise at run time
/// on a client where synchronous calls are disabled (the usual configuration setting).
#[test]
fn client_code_never_attaches_or_installs_synchronously() {
    let mut client_files = 0;
    for (file, text, module) in modules() {
        let Some(client) = compiled(&text, &module, Ctx::Client) else {
            continue;
        };
        client_files += 1;
        let (code, _) = tokenize(&client);
        for name in ["ПодключитьВнешнююКомпоненту", "УстановитьВнешнююКомпоненту"]
        {
            let found = calls_of(&code, name);
            assert!(
                found.is_empty(),
                "{file}: {name} on the client (line {})",
                code[..found[0]].lines().count()
            );
        }
    }
    assert!(client_files >= 4, "{client_files}");
    // The server side of the common module still attaches synchronously.
    let all = modules();
    let (_, text, module) =
        common_module(&all, "WebSocketКомпонента").expect("WebSocketКомпонента");
    let (server, _) = tokenize(&compiled(text, module, Ctx::Server).unwrap());
    assert_eq!(calls_of(&server, "ПодключитьВнешнююКомпоненту").len(), 1);
}

/// `Асинх`/`Ждать` compile only on 8.3.18+ with compatibility mode 8.3.18 or later; the
/// asynchronous methods, notifications and both exist only on the client.
#[test]
fn client_only_language_stays_in_client_code_and_asynch_in_its_own_module() {
    const CLIENT_ONLY: [&str; 7] = [
        "Ждать",
        "ОписаниеОповещения",
        "ВыполнитьОбработкуОповещения",
        "НачатьПодключениеВнешнейКомпоненты",
        "НачатьУстановкуВнешнейКомпоненты",
        "ПодключитьВнешнююКомпонентуАсинх",
        "УстановитьВнешнююКомпонентуАсинх",
    ];
    let mut asynch_files = Vec::new();
    for (file, text, module) in modules() {
        if let Some(server) = compiled(&text, &module, Ctx::Server) {
            let (code, _) = tokenize(&server);
            for (_, w) in words(&code) {
                assert!(
                    w != "Асинх" && !CLIENT_ONLY.contains(&w),
                    "{file}: {w} in code compiled on the server"
                );
            }
        }
        let (code, _) = tokenize(&text);
        if words(&code)
            .iter()
            .any(|&(_, w)| w == "Асинх" || w == "Ждать")
        {
            asynch_files.push(file);
        }
    }
    // Every other module compiles on platforms before 8.3.18 and in older compatibility modes.
    assert_eq!(asynch_files, ["WebSocketКомпонентаКлиент.bsl"]);
    assert!(bsl("WebSocketКомпонентаКлиент.bsl").contains("8.3.18"));
}

/// `Модуль.Метод(…)` between the files, and every `ОписаниеОповещения`'s handlers: they exist,
/// are exported, are compiled where the caller is, and take the parameters the platform
/// passes (a completion handler 1 or 2, an error handler 3).
#[test]
fn every_call_between_modules_and_every_notification_handler_exists() {
    let all = modules();
    let names: Vec<String> = all
        .iter()
        .filter_map(|(_, _, m)| match m {
            Module::Common { name, .. } => Some(name.clone()),
            Module::Form => None,
        })
        .collect();
    let exported = |target: &(String, String, Module), proc_name: &str, ctx: Ctx| -> Option<Proc> {
        let (code, _) = tokenize(&compiled(&target.1, &target.2, ctx)?);
        procedures(&code)
            .into_iter()
            .find(|p| p.name == proc_name && p.export)
    };
    let (mut calls, mut handlers) = (0, 0);
    for caller in &all {
        let (file, text, module) = caller;
        for ctx in [Ctx::Client, Ctx::Server] {
            let Some(view) = compiled(text, module, ctx) else {
                continue;
            };
            let (code, lits) = tokenize(&view);
            for (pos, w) in words(&code) {
                if !names.iter().any(|n| n == w) || !code[pos + w.len()..].starts_with('.') {
                    continue;
                }
                let member: String = code[pos + w.len() + 1..]
                    .chars()
                    .take_while(|&c| is_ident(c))
                    .collect();
                let target = common_module(&all, w).unwrap();
                assert!(
                    exported(target, &member, ctx).is_some(),
                    "{file} ({ctx:?}): {w}.{member} is not an exported method compiled there"
                );
                calls += 1;
            }
            for open in calls_of(&code, "ОписаниеОповещения") {
                let args = call_args(&code, open);
                for (name_at, module_at, arity) in [(0, 1, 1..=2), (3, 4, 3..=3)] {
                    let Some(arg) = args.get(name_at) else {
                        continue;
                    };
                    let proc_name = literal(arg, &lits).expect("a handler name literal");
                    let target = match args.get(module_at).map(String::as_str) {
                        Some("ЭтотОбъект") => caller,
                        Some(m) => {
                            common_module(&all, m).unwrap_or_else(|| panic!("{file}: module {m}"))
                        }
                        None => panic!("{file}: ОписаниеОповещения without a module"),
                    };
                    let p = exported(target, proc_name, Ctx::Client).unwrap_or_else(|| {
                        panic!(
                            "{file}: handler {proc_name} is not an exported client procedure of {}",
                            target.0
                        )
                    });
                    assert!(
                        arity.contains(&p.params.len()),
                        "{file}: {proc_name}{:?}",
                        p.params
                    );
                    handlers += 1;
                }
            }
        }
    }
    assert!(
        calls >= 10 && handlers >= 6,
        "{calls} calls, {handlers} handlers"
    );
}

/// A user who refuses the installation (or an installation that fails) leaves the code in a
/// known state: the asynchronous install is inside `Попытка`, the callback install has an
/// error handler that answers `Ложь` instead of the platform's error window, and the form
/// checks the answer before creating the object.
#[test]
fn a_refused_installation_is_handled() {
    let all = modules();
    let mut installs = 0;
    for (file, text, module) in &all {
        let Some(view) = compiled(text, module, Ctx::Client) else {
            continue;
        };
        let (code, lits) = tokenize(&view);
        for open in calls_of(&code, "УстановитьВнешнююКомпонентуАсинх")
        {
            assert!(
                inside_try(&code, open),
                "{file}: УстановитьВнешнююКомпонентуАсинх outside Попытка"
            );
            installs += 1;
        }
        for open in calls_of(&code, "НачатьУстановкуВнешнейКомпоненты")
        {
            let notify = &call_args(&code, open)[0];
            let inner = open
                + 1
                + code[open + 1..]
                    .find("ОписаниеОповещения")
                    .expect("ОписаниеОповещения");
            let args = call_args(&code, inner + code[inner..].find('(').unwrap());
            assert_eq!(args.len(), 5, "{file}: {notify} has no error handler");
            let handler = literal(&args[3], &lits).unwrap();
            let p = procedures(&code)
                .into_iter()
                .find(|p| p.name == handler)
                .expect("handler in the same module");
            let body = &code[p.body.clone()];
            assert!(
                body.contains(&format!("{} = Ложь", p.params[1])),
                "{file}: {handler} shows the platform's error window"
            );
            let notified = calls_of(body, "ВыполнитьОбработкуОповещения");
            assert!(
                notified
                    .iter()
                    .any(|&o| call_args(body, o).last().map(String::as_str) == Some("Ложь")),
                "{file}: {handler} does not answer Ложь"
            );
            installs += 1;
        }
    }
    assert_eq!(
        installs, 2,
        "one asynchronous and one callback installation"
    );

    // The form: the attach is inside Попытка, and its completion checks the answer first.
    let form = bsl("ФормаЧата.bsl");
    let (code, lits) = tokenize(&compiled(&form, &Module::Form, Ctx::Client).unwrap());
    let pos = code
        .find("WebSocketКомпонента.НачатьПодключениеНаКлиенте(")
        .expect("the form attaches");
    assert!(
        inside_try(&code, pos),
        "the form's attach is outside Попытка"
    );
    let open = pos + code[pos..].find('(').unwrap();
    let notify = &call_args(&code, open)[0];
    let inner = notify.find('(').unwrap();
    let handler = literal(&call_args(notify, inner)[0], &lits)
        .unwrap()
        .to_owned();
    let p = procedures(&code)
        .into_iter()
        .find(|p| p.name == handler)
        .unwrap();
    let body = &code[p.body.clone()];
    let checked = body
        .find(&format!("НЕ {}", p.params[0]))
        .expect("the answer is checked");
    assert!(checked < body.find("НовыйКлиент").unwrap());
}

/// On the client the common module never falls back to the synchronous attach: it raises a
/// text that says what to call first, in both languages.
#[test]
fn the_common_module_asks_for_the_asynchronous_attach_on_the_client() {
    let all = modules();
    let (_, text, module) = common_module(&all, "WebSocketКомпонента").unwrap();
    let (code, lits) = tokenize(&compiled(text, module, Ctx::Client).unwrap());
    let procs = procedures(&code);
    let hint: Vec<&Proc> = procs
        .iter()
        .filter(|p| {
            calls_of(&code[p.body.clone()], "НСтр").iter().any(|&o| {
                let arg = &call_args(&code[p.body.clone()], o)[0];
                literal(arg, &lits).is_some_and(|l| l.contains("НачатьПодключениеНаКлиенте"))
            })
        })
        .collect();
    assert_eq!(hint.len(), 1, "one function holds the hint");
    let body = &code[hint[0].body.clone()];
    let text = literal(&call_args(body, calls_of(body, "НСтр")[0])[0], &lits).unwrap();
    let parts = nstr_parts(text);
    for lang in ["ru", "en"] {
        let (_, t) = parts
            .iter()
            .find(|(c, _)| c == lang)
            .unwrap_or_else(|| panic!("no {lang}"));
        assert!(
            t.contains("WebSocketКомпонента.НачатьПодключениеНаКлиенте")
                && t.contains("WebSocketКомпонентаКлиент.ПодключитьНаКлиентеАсинх"),
            "{lang}: {t}"
        );
    }
    for name in ["Подключить", "НовыйОбъект"] {
        let p = procs.iter().find(|p| p.name == name).unwrap();
        let body = &code[p.body.clone()];
        let raises = words(body)
            .windows(2)
            .any(|w| w[0].1 == "ВызватьИсключение" && w[1].1 == hint[0].name);
        assert!(raises, "{name} does not raise the hint on the client");
    }
}

/// Texts a user or an administrator reads are in `НСтр("ru = '…'; en = '…'")`; no 1C code
/// decides anything by an error's text (it depends on the interface language).
#[test]
fn user_facing_texts_are_translated_and_error_texts_never_matched() {
    const SINKS: [&str; 6] = [
        "ВызватьИсключение",
        "Сообщить",
        "ДобавитьВЖурнал",
        "ПоказатьПредупреждение",
        "ЗаписьЖурналаРегистрации",
        "Состояние",
    ];
    let mut problems = Vec::new();
    let mut translated = 0;
    for (file, text) in bsl_files() {
        let (code, lits) = tokenize(&text);
        let line = |pos: usize| code[..pos].lines().count();
        // Format strings (`Формат(Число, "ЧГ=0")`) are not shown to anyone.
        let formats: Vec<std::ops::Range<usize>> = calls_of(&code, "Формат")
            .into_iter()
            .map(|open| open..closing_paren(&code, open))
            .collect();
        let nstr: Vec<std::ops::Range<usize>> = calls_of(&code, "НСтр")
            .into_iter()
            .map(|open| {
                let args = call_args(&code, open);
                let parts = literal(&args[0], &lits).map(nstr_parts).unwrap_or_default();
                let langs: Vec<&str> = parts
                    .iter()
                    .filter(|(_, t)| !t.trim().is_empty())
                    .map(|(c, _)| c.as_str())
                    .collect();
                if !(langs.contains(&"ru") && langs.contains(&"en")) {
                    problems.push(format!(
                        "{file}:{}: НСтр without ru and en: {:?}",
                        line(open),
                        args[0]
                    ));
                }
                translated += 1;
                open..closing_paren(&code, open)
            })
            .collect();
        for (pos, w) in words(&code) {
            let statement_start = code[..pos].trim_end().is_empty()
                || code[..pos].trim_end().ends_with(';')
                || code[code[..pos].rfind('\n').map_or(0, |n| n + 1)..pos]
                    .trim()
                    .is_empty();
            if !SINKS.contains(&w) || !statement_start {
                continue;
            }
            let end = pos + code[pos..].find(';').unwrap_or(code.len() - pos);
            let mut at = pos;
            while let Some(q) = code[at..end].find('"') {
                let start = at + q;
                let close = start + 1 + code[start + 1..].find('"').unwrap();
                let lit = literal(&code[start..=close], &lits).unwrap_or_default();
                let exempt = nstr.iter().chain(&formats).any(|r| r.contains(&start));
                if has_cyrillic(lit) && !exempt {
                    problems.push(format!(
                        "{file}:{}: {w} shows \"{lit}\" outside НСтр",
                        line(pos)
                    ));
                }
                at = close + 1;
            }
        }
        for f in ["СтрНайти", "Найти", "СтрНачинаетсяС", "СтрЗаканчиваетсяНа"]
        {
            for open in calls_of(&code, f) {
                let args = call_args(&code, open).join(", ");
                if [
                    "ОписаниеОшибки",
                    "ПредставлениеОшибки",
                    "ИнформацияОбОшибке",
                ]
                .iter()
                .any(|e| args.contains(e))
                {
                    problems.push(format!(
                        "{file}:{}: {f}({args}) matches an error text",
                        line(open)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(translated >= 30, "{translated}");
}

#[test]
fn the_rule_checks_catch_mistakes() {
    // Preprocessor and directives.
    let common = Module::Common {
        name: "М".into(),
        client: true,
        server: true,
    };
    let src = "#Если Клиент Тогда\nА();\n#ИначеЕсли НЕ (Сервер ИЛИ ВнешнееСоединение) Тогда\nБ();\n#Иначе\nВ();\n#КонецЕсли\n";
    assert_eq!(compiled(src, &common, Ctx::Client).unwrap().trim(), "А();");
    assert_eq!(compiled(src, &common, Ctx::Server).unwrap().trim(), "В();");
    let form = "&НаКлиенте\nПерем К;\n&НаСервере\nПроцедура С()\n\tX();\nКонецПроцедуры\nПроцедура Б()\nКонецПроцедуры\n";
    let client = compiled(form, &Module::Form, Ctx::Client).unwrap();
    assert!(client.contains("Перем К") && !client.contains("X()") && !client.contains("Б()"));
    let server = compiled(form, &Module::Form, Ctx::Server).unwrap();
    assert!(!server.contains("Перем К") && server.contains("X()") && server.contains("Б()"));
    // Calls, arguments, procedures, Попытка.
    let (code, lits) = tokenize(
        "Х = Р.Попытка;\nПопытка\n\tА(Б(1, 2), \"x, y\");\nИсключение\n\tА(3);\nКонецПопытки;\n\
         Х.А(5);\nПроцедура П(Знач Р, С) Экспорт\nКонецПроцедуры\n",
    );
    let a = calls_of(&code, "А");
    assert_eq!(a.len(), 2, "a member call Х.А(5) is not a call of А");
    assert_eq!(call_args(&code, a[0]), ["Б(1, 2)", "\"0\""]);
    assert_eq!(literal(&call_args(&code, a[0])[1], &lits), Some("x, y"));
    assert!(inside_try(&code, a[0]) && !inside_try(&code, a[1]));
    let p = &procedures(&code)[0];
    assert_eq!(
        (p.name.as_str(), p.params.clone(), p.export),
        ("П", vec!["Р".to_owned(), "С".to_owned()], true)
    );
    // НСтр.
    assert_eq!(
        nstr_parts("ru = 'Клиент ''А'''; en = 'Client ''A'''"),
        [
            ("ru".to_owned(), "Клиент 'А'".to_owned()),
            ("en".to_owned(), "Client 'A'".to_owned())
        ]
    );
}

// ---- the event parser of the common module ----------------------------------------------

/// Every header the add-in can produce, client and server side, as JSON objects.
fn all_headers() -> Vec<serde_json::Map<String, serde_json::Value>> {
    use ws1c::event::{Event, EventKind};
    let kinds = [
        EventKind::Open {
            address: "127.0.0.1:1".into(),
            proxy: None,
            path: "/".into(),
            subprotocol: String::new(),
            headers: vec![],
        },
        EventKind::Open {
            address: "203.0.113.7".into(),
            proxy: Some("127.0.0.2:1".into()),
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
            unsent: 0,
        },
        EventKind::Fail {
            error: "e".into(),
            unsent: 0,
        },
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
        "ProxyAddress",
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
    let keys = option_keys(&bsl("ФормаЧата.bsl"), "Функция ПараметрыПодключения");
    assert_eq!(keys, json_keys(FORM_OPTIONS));
}

/// The form's `ПодключитьсяПослеПодключенияКомпоненты` (the attach answered Истина), as far
/// as setting up the object.
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

    // Подключиться: НачатьПодключение returns at once (Статус 3 meanwhile); the handler sees
    // "Открытие" with the address and the path.
    let t = Instant::now();
    c.call_proc("НачатьПодключение", &mut [s(&url), s(FORM_OPTIONS)])
        .unwrap();
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
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

    // Подключиться again, then the Отключиться command (no wait): "Закрытие" with 1000.
    c.call_proc("НачатьПодключение", &mut [s(&url), s(FORM_OPTIONS)])
        .unwrap();
    wait_pushed(&c, &mut seen, &[r#""State":"Open""#]);
    let no_wait = || [Var::I4(1000), s(""), Var::Bool(false)];
    c.call_proc("Отключиться", &mut no_wait()).unwrap();
    let (header, _) = wait_pushed(&c, &mut seen, &[r#""State":"Close""#]);
    assert!(header.contains(r#""Code":1000"#), "{header}");

    // Подключиться to nothing: the handler sees "Ошибка" with the add-in's reason.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.call_proc(
        "НачатьПодключение",
        &mut [s(&format!("ws://127.0.0.1:{free}/chat")), s(FORM_OPTIONS)],
    )
    .unwrap();
    let (header, _) = wait_pushed(&c, &mut seen, &[r#""State":"Fail""#]);
    assert!(header.contains("отклонил подключение"), "{header}");
    // A bad address still raises at once: the form's exception branch.
    let err = c
        .call_proc("НачатьПодключение", &mut [s("http://x"), s(FORM_OPTIONS)])
        .unwrap_err();
    assert!(err.text.contains("ws://"), "{}", err.text);
    assert_eq!(c.call("ОписаниеОшибки", &mut []).unwrap(), s(&err.text));

    // ПриЗакрытии: Отключиться on a client that is not connected raises nothing.
    c.call_proc("Отключиться", &mut no_wait()).unwrap();
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
    c.call_proc("НачатьПодключение", &mut [s(&url), s(FORM_OPTIONS)])
        .unwrap();
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
    // Why a sleep: proving that no Reconnecting comes needs a window longer than the form's
    // reconnect delay (1000 ms); a Reconnecting within it fails the assertion below.
    std::thread::sleep(Duration::from_millis(1500));
    seen.extend(c.conn().take_events());
    assert!(
        !seen.iter().any(|e| e.message.contains("Reconnecting")),
        "{seen:?}"
    );
    finish(c);
}

// ---- РегламентноеЗаданиеСлушатель.bsl -------------------------------------------------------

/// The options the listener job builds (`ПараметрыСлушателя`), verbatim.
const LISTENER_OPTIONS: &str = r#"{"persistent":{"name":"атс","idle_expiry_ms":600000},"reconnect":{"enabled":true,"min_delay_ms":1000,"max_delay_ms":30000},"ping_interval_ms":30000}"#;

#[test]
fn scheduled_job_listener_options_in_the_test_are_the_jobs() {
    let keys = option_keys(
        &bsl("РегламентноеЗаданиеСлушатель.bsl"),
        "Функция ПараметрыСлушателя",
    );
    assert_eq!(keys, json_keys(LISTENER_OPTIONS));
}

/// One run of `ОбработатьСобытияАТС`, its loop bounded by `calls` messages handled instead
/// of 55 s: the kinds of the events it saw, in order ("Сообщение <text>" for messages).
fn listener_run(url: &str, calls: usize) -> Vec<String> {
    let c = create_with("Client", HostOptions::server());
    c.set("РежимДоставки", s("Опрос")).unwrap();
    c.call("Подключиться", &mut [s(url), s(LISTENER_OPTIONS)])
        .expect("Подключиться");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    let mut handled = 0;
    while handled < calls {
        assert!(Instant::now() < deadline, "the job saw {seen:?}");
        let mut args = [Var::I4(1000), s(""), s("")];
        if c.call("ПолучитьСобытие", &mut args).unwrap() != Var::Bool(true) {
            continue;
        }
        let header: serde_json::Value = serde_json::from_str(args[1].as_str().unwrap()).unwrap();
        if header["Event"] == "Message" {
            let text = args[2].as_str().unwrap().to_owned();
            // ОбработатьЗвонок: the acknowledgement.
            c.call_proc("Отправить", &mut [s(&format!("принято: {text}"))])
                .unwrap();
            seen.push(format!("Сообщение {text}"));
            handled += 1;
        } else {
            seen.push(header["State"].as_str().unwrap_or("?").to_owned());
        }
    }
    finish(c); // the job's session ends; Отключиться() is not called
    seen
}

#[test]
fn scheduled_job_listener_stays_connected_between_runs() {
    let _g = serial();
    // The PBX: a call event every 20 ms, numbered across its restarts; it records the
    // acknowledgements.
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
    let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (n, a) = (next.clone(), acks.clone());
    let mut pbx = common::RestartablePeer::start(move |ws| {
        use futures_util::{SinkExt, StreamExt};
        let (n, a) = (n.clone(), a.clone());
        async move {
            let (mut tx, mut rx) = ws.split();
            let reading = tokio::spawn(async move {
                while let Some(Ok(m)) = rx.next().await {
                    if let Ok(t) = m.into_text() {
                        a.lock().unwrap().push(t.to_string());
                    }
                }
            });
            loop {
                let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let call = tokio_tungstenite::tungstenite::Message::text(format!("звонок {k}"));
                if tx.send(call).await.is_err() || reading.is_finished() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let url = format!("{}events", pbx.url());

    // First run: connects once, handles two calls, leaves without disconnecting.
    let first = listener_run(&url, 2);
    assert_eq!(first, ["Open", "Сообщение звонок 1", "Сообщение звонок 2"]);

    // Between runs: calls keep coming, then the PBX restarts; the listener reconnects alone.
    std::thread::sleep(Duration::from_millis(200));
    pbx.down();
    pbx.up();
    std::thread::sleep(Duration::from_millis(1600));

    // Next run: everything in between, in order, with the drop and the reconnection.
    let second = listener_run(&url, 12);
    let messages: Vec<u64> = second
        .iter()
        .filter_map(|e| e.strip_prefix("Сообщение звонок "))
        .map(|k| k.parse().unwrap())
        .collect();
    assert_eq!(messages[0], 3, "{second:?}");
    assert!(messages.windows(2).all(|w| w[0] < w[1]), "{second:?}");
    let at = |what: &str| second.iter().position(|e| e == what);
    let drop = at("Close").or(at("Fail")).expect("the drop");
    let (re, open) = (
        at("Reconnecting").expect("Reconnecting"),
        at("Open").expect("Open"),
    );
    assert!(
        drop < re && re < open && open < second.len() - 1,
        "{second:?}"
    );
    // The acknowledgements reached the PBX (those of the first run before the restart).
    assert!(
        acks.lock()
            .unwrap()
            .contains(&"принято: звонок 1".to_owned())
    );

    // The test ends it; the job never does.
    let c = create_with("Client", HostOptions::server());
    assert_eq!(
        c.call("Подключиться", &mut [s(&url), s(LISTENER_OPTIONS)])
            .unwrap(),
        Var::Bool(true)
    );
    c.call_proc("Отключиться", &mut []).unwrap();
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
    // Why a sleep: the message must arrive while no object is attached (the point of the
    // test); the next run's receive has its own bound.
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

/// `ВыполнитьПолноеТестированиеКомпоненты`, call for call, where the platform runs it as `app`.
fn full_self_test(app: fn() -> HostOptions) {
    let _g = serial();
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
    // A second Подключиться raises, and the connection stays: Статус, Сервер, and a described
    // error (whatever the interface language: no text is compared).
    client.call("Подключиться", &mut [s(&url)]).unwrap_err();
    assert_eq!(client.get("Статус").unwrap(), Var::I4(1));
    assert_eq!(client.get("Сервер").unwrap(), s(&url));
    let text = client.call("ОписаниеОшибки", &mut []).unwrap();
    assert!(!text.as_str().unwrap().trim().is_empty());

    client.call("Отправить", &mut [s("ase1ЦУ")]).unwrap();
    let (id, data) = server_receive(&echo, 5000).expect("echo receives");
    assert_eq!(data, s("ase1ЦУ"));
    assert_eq!(
        echo.call("Отправить", &mut [Var::I4(id as i32), data])
            .unwrap(),
        Var::I4(1)
    );
    assert_eq!(client_receive(&client, 5000), Some(s("ase1ЦУ")));
    let t = Instant::now();
    assert_eq!(client_receive(&client, 3000), None);
    assert!(t.elapsed() >= Duration::from_millis(2900));

    let bytes = "ase1ЦУ".as_bytes().to_vec();
    client
        .call("ОтправитьДвоичныеДанные", &mut [Var::Blob(bytes.clone())])
        .unwrap();
    let (id, data) = server_receive(&echo, 5000).expect("binary");
    assert_eq!(data, Var::Blob(bytes.clone()));
    echo.call("ОтправитьДвоичныеДанные", &mut [Var::I4(id as i32), data])
        .unwrap();
    assert_eq!(client_receive(&client, 5000), Some(Var::Blob(bytes)));

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
    let (id, data) = server_receive(&server, 5000).expect("server receives");
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
    assert_eq!(client_receive(&c2, 5000), Some(s("только второму")));
    assert_eq!(
        server.call("ОтправитьВсем", &mut [s("всем")]).unwrap(),
        Var::I4(2)
    );
    assert_eq!(client_receive(&c1, 5000), Some(s("всем")));

    assert_eq!(
        server.call("Отключить", &mut [Var::I4(id as i32)]).unwrap(),
        Var::Bool(true)
    );
    assert_eq!(client_receive(&c1, 5000), None);

    finish(c1);
    finish(c2);
    server.call_proc("Остановить", &mut []).unwrap();
    finish(server);
}

/// On a thin client, where `Авто` would push: the test sets `Опрос` itself.
#[test]
fn full_self_test_thin_client() {
    full_self_test(HostOptions::default);
}

/// With an English interface: the add-in's error texts are English, and the test still
/// passes (it compared the Russian text of "already connected" before).
#[test]
fn full_self_test_english_interface() {
    full_self_test(HostOptions::english);
}

/// On the 1C server and in an external connection.
#[test]
fn full_self_test_server_context() {
    full_self_test(HostOptions::server);
}

// ---- ФормаSocketIO.bsl ----------------------------------------------------------------------

const SIO_FORM_OPTIONS: &str =
    r#"{"reconnect":{"enabled":true,"min_delay_ms":500,"max_delay_ms":30000}}"#;

#[test]
fn socketio_form_options_in_the_test_are_the_forms() {
    let keys = option_keys(&bsl("ФормаSocketIO.bsl"), "Функция ПараметрыПодключения");
    assert_eq!(keys, json_keys(SIO_FORM_OPTIONS));
}

/// The next pushed event of the Socket.IO form (source "ЧатSocketIO").
fn sio_pushed(obj: &Obj) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(e) = obj.conn().take_events().into_iter().next() {
            assert_eq!(e.source, "ЧатSocketIO");
            return (e.message, e.data);
        }
        assert!(Instant::now() < deadline, "nothing pushed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The form's handler compares `Данные` with ROM-SocketIO's strings as wholes; every branch
/// it takes is reached here with the same strings.
#[test]
fn socketio_form_push_sequence() {
    let _g = serial();
    let peer = common::sio::SioPeer::start(&[]);
    let url = format!("ws://127.0.0.1:{}", peer.port);
    // ПодключитьсяПослеПодключенияКомпоненты.
    let c = create_with("SocketIO", HostOptions::default());
    c.set("РежимДоставки", s("События")).unwrap();
    c.set("ИсточникСобытий", s("ЧатSocketIO")).unwrap();
    c.call_proc("Подписаться", &mut [s("new message")]).unwrap();
    let t = Instant::now();
    c.call_proc("НачатьПодключение", &mut [s(&url), s(SIO_FORM_OPTIONS)])
        .unwrap();
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    // ВнешнееСобытие: Данные = "{""Connection"": ""Open""}".
    assert_eq!(sio_pushed(&c).1, "{\"Connection\": \"Open\"}");
    // Отправить: Подключено, then Отправить("new message", ТекстСообщения); the broadcast
    // comes back as a Message whose Name is "new message", Аргументы[1] the text.
    assert_eq!(c.get("Подключено").unwrap(), Var::Bool(true));
    c.call_proc("Отправить", &mut [s("new message"), s("Привет мир!")])
        .unwrap();
    let (h, d) = sio_pushed(&c);
    let header: serde_json::Value = serde_json::from_str(&h).unwrap();
    assert_eq!(
        (header["Event"].as_str(), header["Name"].as_str()),
        (Some("Message"), Some("new message"))
    );
    let args: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert_eq!(args[1], "Привет мир!");
    // Отключиться: Данные = "{""Connection"": ""Close""}", ПричинаОтключения for the log.
    c.call_proc("Отключиться", &mut []).unwrap();
    assert_eq!(sio_pushed(&c).1, "{\"Connection\": \"Close\"}");
    assert_eq!(
        c.get("ПричинаОтключения").unwrap(),
        s("io client disconnect")
    );
    // Nothing listens: Данные = "{""Connection"": ""Fail""}", ПоследняяОшибка for the log.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.call_proc(
        "НачатьПодключение",
        &mut [s(&format!("ws://127.0.0.1:{free}")), s(SIO_FORM_OPTIONS)],
    )
    .unwrap();
    assert_eq!(sio_pushed(&c).1, "{\"Connection\": \"Fail\"}");
    assert!(
        !c.get("ПоследняяОшибка")
            .unwrap()
            .as_str()
            .unwrap()
            .is_empty()
    );
    // Отправить while not connected: the form's "Нет подключения" branch (Подключено = Ложь).
    assert_eq!(c.get("Подключено").unwrap(), Var::Bool(false));
    // A bad address raises at once: the form's exception branch.
    let err = c
        .call_proc(
            "НачатьПодключение",
            &mut [s("ftp://x"), s(SIO_FORM_OPTIONS)],
        )
        .unwrap_err();
    assert_eq!(c.call("ОписаниеОшибки", &mut []).unwrap(), s(&err.text));
    // ПриЗакрытии: Отключиться on an object that is not connected raises nothing.
    c.call_proc("Отключиться", &mut []).unwrap();
    finish(c);
}

// ---- РегламентноеЗаданиеSocketIO.bsl --------------------------------------------------------

const SIO_JOB_OPTIONS: &str = r#"{"auth":{"token":"s3cret"},"timeout_ms":10000}"#;

#[test]
fn socketio_job_options_in_the_test_are_the_jobs() {
    let keys = option_keys(
        &bsl("РегламентноеЗаданиеSocketIO.bsl"),
        "Функция ПараметрыПодключения",
    );
    assert_eq!(keys, json_keys(SIO_JOB_OPTIONS));
}

/// `ЗаказыSocketIO.ПринятьЗаказы` on the 1C server: pull, the order's ack answered with
/// `Подтвердить`, the total sent with `ОтправитьИЖдать`, then `Отключиться`.
#[test]
fn socketio_scheduled_job() {
    let _g = serial();
    let peer = common::sio::SioPeer::start(&[]);
    let job = create_with("SocketIO", HostOptions::server());
    job.set("РежимДоставки", s("Опрос")).unwrap();
    job.call_proc("Подписаться", &mut [s("order")]).unwrap();
    let url = format!("ws://127.0.0.1:{}/orders", peer.port);
    // Without the token the server refuses: the job logs ПоследняяОшибка and returns.
    let refused = job.call("Подключиться", &mut [s(&url), s("")]).unwrap();
    assert_eq!(refused, Var::Bool(false));
    assert!(
        job.get("ПоследняяОшибка")
            .unwrap()
            .as_str()
            .unwrap()
            .contains("Not authorized")
    );
    let mut ev = [Var::I4(1000), Var::Empty, Var::Empty];
    assert_eq!(
        job.call("ПолучитьСобытие", &mut ev).unwrap(),
        Var::Bool(true)
    );
    assert_eq!(ev[2], s("{\"Connection\": \"Fail\"}"));
    // With ПараметрыПодключения.
    let ok = job
        .call("Подключиться", &mut [s(&url), s(SIO_JOB_OPTIONS)])
        .unwrap();
    assert_eq!(ok, Var::Bool(true));
    job.call_proc("Отправить", &mut [s("ready")]).unwrap();
    // The loop: Open first (not a Message: Продолжить), then the order.
    let next = || {
        let mut ev = [Var::I4(1000), Var::Empty, Var::Empty];
        assert_eq!(
            job.call("ПолучитьСобытие", &mut ev).unwrap(),
            Var::Bool(true)
        );
        (
            ev[1].as_str().unwrap().to_owned(),
            ev[2].as_str().unwrap().to_owned(),
        )
    };
    let (h, _) = next();
    assert_eq!(h, r#"{"Event": "Connection","State": "Open"}"#);
    let (h, d) = next();
    let header: serde_json::Value = serde_json::from_str(&h).unwrap();
    assert_eq!(header["Event"], "Message");
    let args: serde_json::Value = serde_json::from_str(&d).unwrap();
    assert_eq!(args, serde_json::json!(["order", {"id": 1, "sum": 100}]));
    // ЗаписатьЗаказ's answer, by Подтвердить(Заголовок.Получить("Ack"), Ответ).
    let ack = header["Ack"].as_i64().expect("the order asks for an ack");
    job.call_proc("Подтвердить", &mut [Var::I8(ack), s("принят 1")])
        .unwrap();
    let answer = peer.expect("the answer", |v| v["answer"].is_array());
    assert_eq!(answer["answer"], serde_json::json!(["принят 1"]));
    // ОтправитьИЖдать("ack", Формат(Принято, "ЧГ=0"), 5000).
    let total = job
        .call("ОтправитьИЖдать", &mut [s("ack"), s("1"), Var::I4(5000)])
        .unwrap();
    assert_eq!(total, s(r#"[{"got":["1"]}]"#));
    job.call_proc("Отключиться", &mut []).unwrap();
    assert_eq!(job.conn().external_event_calls(), 0);
    finish(job);
}
