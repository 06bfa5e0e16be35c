//! The two objects 1C code creates, and [`AddIn`], the generic shell around them that
//! `abi/` drives by member index.
//!
//! `AddIn` owns everything both objects share: argument count and type checks against the
//! tables, defaults for omitted or `Неопределено` optional arguments, the language of error
//! texts, the last error for `ОписаниеОшибки()`, and the test-only members. The objects
//! themselves see only checked arguments and member ids.

mod client;
mod core;
mod server;
mod socketio;

use std::time::Instant;

use crate::error::{Error, Result};
use crate::lang::Lang;
use crate::platform::PlatformContext;
use crate::registry::{Members, MethodDef, MethodId, PropDef, PropId};
use crate::value::{ParamType, Value};

pub use client::Client;
pub use core::{ObjectCore, close_code};
pub use server::Server;
pub use socketio::SocketIo;

/// The add-in's version, as `Версия` / `Version` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Class names as `GetClassNames` lists them, `|`-separated.
pub const CLASS_NAMES: &str = "Client|Server|SocketIO";

/// Arguments of one call: values in, by-reference values out.
#[derive(Debug, Default)]
pub struct Args {
    values: Vec<Value>,
    outs: Vec<(usize, Value)>,
}

impl Args {
    /// Arguments as the platform passed them.
    pub fn new(values: Vec<Value>) -> Args {
        Args {
            values,
            outs: Vec::new(),
        }
    }

    /// How many arguments arrived.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no argument arrived.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Argument `k` (0-based); `Неопределено` past the end.
    pub fn get(&self, k: usize) -> &Value {
        self.values.get(k).unwrap_or(&Value::Empty)
    }

    /// Argument `k` as a string (checked against the table before the call).
    pub fn str(&self, k: usize) -> &str {
        self.get(k).as_str().unwrap_or_default()
    }

    /// Argument `k` as an owned string, leaving "" behind: a message to send is moved into
    /// the frame rather than copied once more.
    pub fn take_str(&mut self, k: usize) -> String {
        match self.values.get_mut(k) {
            Some(Value::Str(s)) => std::mem::take(s),
            _ => String::new(),
        }
    }

    /// Argument `k` as a number (checked against the table before the call).
    pub fn number(&self, k: usize) -> f64 {
        self.get(k).as_f64().unwrap_or(0.0)
    }

    /// Writes `v` into by-reference argument `k`; written back to 1C after the call.
    pub fn set_out(&mut self, k: usize, v: Value) {
        self.outs.retain(|(i, _)| *i != k);
        self.outs.push((k, v));
    }

    /// The by-reference values written during the call.
    pub fn take_outs(&mut self) -> Vec<(usize, Value)> {
        std::mem::take(&mut self.outs)
    }

    /// The by-reference values written during the call, drained (the buffer stays).
    pub fn drain_outs(&mut self) -> std::vec::Drain<'_, (usize, Value)> {
        self.outs.drain(..)
    }

    /// Empties the arguments for the next call, keeping both buffers: the platform calls
    /// in a loop, and two allocations per call are worth saving there.
    pub fn clear(&mut self) {
        self.values.clear();
        self.outs.clear();
    }

    /// Appends the next argument.
    pub fn push(&mut self, v: Value) {
        self.values.push(v);
    }
}

/// What each object implements beside the [`ObjectCore`] that `AddIn` holds for it and
/// passes in; `AddIn` has already checked the arguments and routed the core's own members
/// (hub properties, pull calls) to the core.
pub trait Object: Send {
    /// The object's member tables.
    fn members(&self) -> &'static Members;
    /// Reads one of the object's own readable properties.
    fn get(&mut self, core: &ObjectCore, prop: &PropDef) -> Result<Value>;
    /// Writes one of the object's own writable properties (none by default).
    fn set(&mut self, _core: &mut ObjectCore, prop: &PropDef, _v: Value) -> Result<()> {
        Err(Error::ReadOnly { prop: prop.names })
    }
    /// Calls one of the object's own methods with checked arguments.
    fn call(&mut self, core: &mut ObjectCore, m: &MethodDef, args: &mut Args) -> Result<Value>;
    /// `Done()`: stop everything the object started, by `deadline`; no event may reach 1C
    /// afterwards. An object with parts of its own stops them, then calls the core's.
    fn done(&mut self, core: &mut ObjectCore, deadline: Instant) {
        core.done(deadline);
    }
}

/// One live add-in object as the platform sees it.
pub struct AddIn {
    obj: Box<dyn Object>,
    /// What every object shares (hub, settings, engine, pull calls, `Done()`).
    core: ObjectCore,
    locale: Option<Lang>,
    ui_lang: Option<Lang>,
    last_error: String,
    /// `ТестЗначение`, kept for the round-trip tests.
    test_value: Value,
}

impl AddIn {
    /// A new object of class `Client`, `Server` or `SocketIO` (case-insensitive), `None`
    /// otherwise.
    pub fn create(class: &str) -> Option<AddIn> {
        let obj: Box<dyn Object> = if class.eq_ignore_ascii_case("Client") {
            Box::new(Client::new())
        } else if class.eq_ignore_ascii_case("Server") {
            Box::new(Server::new())
        } else if class.eq_ignore_ascii_case("SocketIO") {
            Box::new(SocketIo::new())
        } else {
            return None;
        };
        Some(AddIn {
            obj,
            core: ObjectCore::new(),
            locale: None,
            ui_lang: None,
            last_error: String::new(),
            test_value: Value::Empty,
        })
    }

    /// The object's member tables.
    pub fn members(&self) -> &'static Members {
        self.obj.members()
    }

    /// `Init`.
    pub fn attach(&mut self, ctx: PlatformContext) {
        self.core.attach(ctx);
    }

    /// `ТаймаутЗавершения`: the bound on `Done()`.
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        self.core.settings.shutdown_timeout
    }

    /// `SetLocale`.
    pub fn set_locale(&mut self, code: &str) {
        self.locale = Some(Lang::from_code(code));
        self.core.set_lang(self.lang());
    }

    /// `SetUserInterfaceLanguageCode`; wins over the locale, being the user's own choice.
    pub fn set_interface_language(&mut self, code: &str) {
        self.ui_lang = Some(Lang::from_code(code));
        self.core.set_lang(self.lang());
    }

    /// The language of texts (Russian until the platform says otherwise).
    pub fn lang(&self) -> Lang {
        self.ui_lang.or(self.locale).unwrap_or_default()
    }

    /// The last error text, as `ОписаниеОшибки()` returns it.
    pub fn last_error(&self) -> &str {
        &self.last_error
    }

    /// Records a failure for `ОписаниеОшибки()` and returns its text for `AddError`.
    pub fn fail(&mut self, e: &Error) -> String {
        self.last_error = e.text(self.lang());
        self.last_error.clone()
    }

    /// The default of parameter `k` of method `m`, if it has one.
    pub fn param_default(&self, m: usize, k: usize) -> Option<Value> {
        let def = self.members().methods.get(m)?;
        def.params.get(k)?.default.map(|d| d.value())
    }

    /// Reads property `idx`.
    pub fn get_prop(&mut self, idx: usize) -> Result<Value, String> {
        let r = self.get_prop_inner(idx);
        r.map_err(|e| self.fail(&e))
    }

    fn get_prop_inner(&mut self, idx: usize) -> Result<Value> {
        let lang = self.lang();
        let prop = *self
            .members()
            .props
            .get(idx)
            .ok_or(Error::NoSuchMember { index: idx })?;
        if !prop.readable {
            return Err(Error::NotReadable { prop: prop.names });
        }
        match prop.id {
            PropId::Version => Ok(Value::Str(VERSION.to_owned())),
            PropId::TestValue => Ok(self.test_value.clone()),
            PropId::TestPanicProp => panic!("TestPanicProp: a panic forced by a test"),
            _ => match self.core.get(&prop, lang) {
                Some(v) => Ok(v),
                None => self.obj.get(&self.core, &prop),
            },
        }
    }

    /// Writes property `idx`.
    pub fn set_prop(&mut self, idx: usize, v: Value) -> Result<(), String> {
        let r = self.set_prop_inner(idx, v);
        r.map_err(|e| self.fail(&e))
    }

    fn set_prop_inner(&mut self, idx: usize, v: Value) -> Result<()> {
        let prop = *self
            .members()
            .props
            .get(idx)
            .ok_or(Error::NoSuchMember { index: idx })?;
        let Some(ty) = prop.writable else {
            return Err(Error::ReadOnly { prop: prop.names });
        };
        if !ty.accepts(&v) {
            return Err(Error::PropType {
                prop: prop.names,
                expected: ty.expected().unwrap_or(v.type_name()),
                got: v.type_name(),
            });
        }
        match prop.id {
            PropId::TestValue => {
                self.test_value = v;
                Ok(())
            }
            _ if self.core.set(&prop, &v)? => Ok(()),
            _ => self.obj.set(&mut self.core, &prop, v),
        }
    }

    /// Calls method `idx` with the platform's arguments; by-reference results are left in
    /// `args` (see [`Args::take_outs`]).
    pub fn call(&mut self, idx: usize, args: &mut Args) -> Result<Value, String> {
        let r = self.call_inner(idx, args);
        r.map_err(|e| self.fail(&e))
    }

    fn call_inner(&mut self, idx: usize, args: &mut Args) -> Result<Value> {
        let m = *self
            .members()
            .methods
            .get(idx)
            .ok_or(Error::NoSuchMember { index: idx })?;
        check_args(&m, args)?;
        match m.id {
            MethodId::ErrorDescription => Ok(Value::Str(self.last_error.clone())),
            MethodId::TestEcho => Ok(args.get(0).clone()),
            MethodId::TestOut => {
                let v = args.get(0).clone();
                args.set_out(1, v);
                Ok(Value::Empty)
            }
            MethodId::TestNumber => Ok(Value::Double(args.number(0) * 2.0)),
            MethodId::TestDefaults => Ok(Value::Str(
                (0..args.len())
                    .map(|k| show_value(args.get(k)))
                    .collect::<Vec<_>>()
                    .join("|"),
            )),
            MethodId::TestPanic => panic!("TestPanic: a panic forced by a test"),
            _ => {
                self.core.check_live()?;
                match self.core.call(&m, args) {
                    Some(r) => r,
                    None => self.obj.call(&mut self.core, &m, args),
                }
            }
        }
    }

    /// `Done()`, returning by `deadline`.
    pub fn done(&mut self, deadline: Instant) {
        self.obj.done(&mut self.core, deadline);
    }
}

/// Checks the count and the types; replaces `Неопределено` in optional parameters by
/// their defaults, as if the argument had been omitted.
fn check_args(m: &MethodDef, args: &mut Args) -> Result<()> {
    if args.len() != m.params.len() {
        return Err(Error::ArgCount {
            method: m.names,
            expected: m.params.len(),
            got: args.len(),
        });
    }
    for (k, p) in m.params.iter().enumerate() {
        if let (Value::Empty, Some(d)) = (&args.values[k], p.default)
            && p.ty != ParamType::Out
        {
            args.values[k] = d.value();
        }
        let v = &args.values[k];
        if let Some(expected) = p.ty.expected()
            && !p.ty.accepts(v)
        {
            return Err(Error::ArgType {
                method: m.names,
                param: p.names,
                index: k + 1,
                expected,
                got: v.type_name(),
            });
        }
    }
    Ok(())
}

/// A short rendering of a value for `TestDefaults`.
fn show_value(v: &Value) -> String {
    match v {
        Value::Empty => "Undefined".into(),
        Value::Null => "Null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Date(d) => d.to_string(),
        Value::Str(s) => s.clone(),
        Value::Binary(b) => format!("<{} bytes>", b.len()),
        Value::Unsupported(tag) => format!("<tag {tag}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(a: &mut AddIn, name: &str, args: Vec<Value>) -> (Result<Value, String>, Args) {
        let idx = a.members().find_method(name).expect(name);
        let mut args = Args::new(args);
        (a.call(idx, &mut args), args)
    }

    #[test]
    fn classes() {
        assert!(AddIn::create("client").is_some());
        assert!(AddIn::create("Server").is_some());
        assert!(AddIn::create("Клиент").is_none());
        assert_eq!(AddIn::create("Client").unwrap().members().class, "Client");
    }

    #[test]
    fn wrong_type_is_an_error_with_names_and_is_remembered() {
        let mut a = AddIn::create("Client").unwrap();
        let (r, _) = call(&mut a, "Получить", vec!["abc".into(), Value::Empty]);
        let text = r.unwrap_err();
        assert!(text.contains("Таймаут") && text.contains("Число"), "{text}");
        let (d, _) = call(&mut a, "ОписаниеОшибки", vec![]);
        assert_eq!(d.unwrap(), Value::Str(text));
        a.set_interface_language("en");
        let (r, _) = call(&mut a, "Receive", vec![Value::Bool(true), Value::Empty]);
        assert!(r.unwrap_err().contains("argument 1 (Timeout)"));
    }

    #[test]
    fn argument_count_is_checked() {
        let mut a = AddIn::create("Server").unwrap();
        let (r, _) = call(&mut a, "Остановить", vec![Value::Int(1)]);
        assert!(r.unwrap_err().contains("ожидается 0, передано 1"));
    }

    #[test]
    fn undefined_optional_argument_takes_its_default() {
        use crate::error::Names;
        use crate::registry::{DefaultValue, ParamDef};
        let m = MethodDef {
            id: MethodId::Disconnect,
            names: Names {
                ru: "Отключиться",
                en: "Disconnect",
            },
            aliases: &[],
            params: &[ParamDef {
                names: Names {
                    ru: "Код",
                    en: "Code",
                },
                ty: ParamType::Number,
                default: Some(DefaultValue::Int(1000)),
            }],
            returns: false,
        };
        let mut args = Args::new(vec![Value::Empty]);
        check_args(&m, &mut args).unwrap();
        assert_eq!(args.get(0), &Value::Int(1000));
    }

    #[test]
    fn hub_properties_and_read_only() {
        let mut a = AddIn::create("Client").unwrap();
        let mode = a.members().find_prop("РежимДоставки").unwrap();
        a.set_prop(mode, "опрос".into()).unwrap();
        assert_eq!(a.get_prop(mode).unwrap(), Value::Str("Опрос".into()));
        let status = a.members().find_prop("Статус").unwrap();
        assert_eq!(a.get_prop(status).unwrap(), Value::Int(0));
        assert!(
            a.set_prop(status, Value::Int(1))
                .unwrap_err()
                .contains("только для чтения")
        );
        let version = a.members().find_prop("Version").unwrap();
        assert_eq!(a.get_prop(version).unwrap(), Value::Str(VERSION.into()));
    }

    #[test]
    fn a_port_out_of_range_is_refused_by_name() {
        let mut a = AddIn::create("Server").unwrap();
        let args = vec![
            "127.0.0.1".into(),
            Value::Int(70000),
            "".into(),
            "".into(),
            "".into(),
        ];
        let (r, _) = call(&mut a, "Запустить", args);
        assert!(r.unwrap_err().contains("Недопустимое значение Порт"));
    }

    #[cfg(feature = "test-hooks")]
    #[test]
    fn test_members() {
        let mut a = AddIn::create("Client").unwrap();
        let (r, mut args) = call(&mut a, "ТестВыход", vec!["x".into(), Value::Int(1)]);
        assert_eq!(r.unwrap(), Value::Empty);
        assert_eq!(args.take_outs(), vec![(1, Value::Str("x".into()))]);
        let (r, _) = call(
            &mut a,
            "TestDefaults",
            vec![Value::Empty, Value::Empty, Value::Empty, Value::Empty],
        );
        assert_eq!(
            r.unwrap(),
            Value::Str("по умолчанию|7|true|Undefined".into())
        );
    }
}
