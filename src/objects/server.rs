//! `AddIn.WebSocket.Server`.

use crate::error::{Error, Result};
use crate::hub::HubSettings;
use crate::lang::Lang;
use crate::objects::{Args, Object};
use crate::platform::{AppType, PlatformContext};
use crate::registry::{Members, MethodDef, PropDef, PropId, SERVER};
use crate::value::Value;

/// A WebSocket server object.
#[derive(Default)]
pub struct Server {
    hub: HubSettings,
    app: AppType,
    ctx: Option<PlatformContext>,
}

impl Server {
    /// A server that is not listening.
    pub fn new() -> Server {
        Server::default()
    }
}

impl Object for Server {
    fn members(&self) -> &'static Members {
        &SERVER
    }

    fn attach(&mut self, ctx: PlatformContext) {
        self.app = ctx.app;
        self.ctx = Some(ctx);
    }

    fn get(&mut self, prop: &PropDef, lang: Lang) -> Result<Value> {
        if let Some(v) = self.hub.get(prop.id, lang) {
            return Ok(v);
        }
        Ok(match prop.id {
            PropId::Status
            | PropId::Port
            | PropId::ConnectionCount
            | PropId::Pending
            | PropId::Undelivered => Value::Int(0),
            PropId::Server | PropId::Connections => Value::Str(String::new()),
            _ => return Err(Error::NotImplemented { member: prop.names }),
        })
    }

    fn set(&mut self, prop: &PropDef, v: Value) -> Result<()> {
        if self.hub.set(prop.id, prop.names, &v)? {
            return Ok(());
        }
        Err(Error::ReadOnly { prop: prop.names })
    }

    fn call(&mut self, m: &MethodDef, _args: &mut Args, _lang: Lang) -> Result<Value> {
        Err(Error::NotImplemented { member: m.names })
    }

    fn done(&mut self) {
        self.ctx = None;
    }
}
