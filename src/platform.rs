//! What the core knows about the 1C platform that loaded it, without any pointer: the kind
//! of application (from `IPlatformInfo`) and a sink for external events.

use std::sync::Arc;

/// The platform application type (`AppType` of the Native API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AppType {
    /// Unknown, or the platform did not negotiate capabilities.
    #[default]
    Unknown,
    /// Thin client.
    ThinClient,
    /// Thick client.
    ThickClient,
    /// Web client.
    WebClient,
    /// 1C:Enterprise server (no external events are ever delivered).
    Server,
    /// External connection (COM/OLE; no event loop either).
    ExternalConnection,
    /// Mobile client.
    MobileClient,
    /// Mobile server.
    MobileServer,
}

impl AppType {
    /// From the `AppType` code: -1 unknown, 0 thin client … 6 mobile server.
    pub fn from_code(code: i32) -> AppType {
        match code {
            0 => AppType::ThinClient,
            1 => AppType::ThickClient,
            2 => AppType::WebClient,
            3 => AppType::Server,
            4 => AppType::ExternalConnection,
            5 => AppType::MobileClient,
            6 => AppType::MobileServer,
            _ => AppType::Unknown,
        }
    }

    /// Whether `ExternalEvent` can reach 1C code here. The 1C server and an external
    /// connection have no event loop, so events raised there are never handled.
    pub fn delivers_events(self) -> bool {
        !matches!(
            self,
            AppType::Server | AppType::ExternalConnection | AppType::MobileServer
        )
    }
}

/// The outcome of one `ExternalEvent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The platform accepted the event.
    Delivered,
    /// The platform refused it (its buffer is full, or it cannot deliver events).
    Refused,
    /// The object is done: the platform handle is disarmed and must not be used.
    Closed,
}

/// Where pushed events go: implemented in `abi/` over `IAddInDefBase::ExternalEvent`, and
/// disarmed by `Done()` before any teardown, so that no event reaches 1C after it.
pub trait EventSink: Send + Sync {
    /// Raises `ExternalEvent(source, event, data)`.
    fn emit(&self, source: &str, event: &str, data: &str) -> Emit;

    /// `SetEventBufferDepth(depth)`: how many events the platform keeps for 1C code that is
    /// busy. What happens beyond it is the platform's business (it may discard events and
    /// still answer true), which is why the notify mode keeps every payload for pull.
    fn set_buffer_depth(&self, _depth: usize) -> bool {
        false
    }
}

/// What `Init` tells the object about its platform.
#[derive(Clone)]
pub struct PlatformContext {
    /// The application kind, when the platform told it.
    pub app: AppType,
    /// The platform's external-event sink.
    pub sink: Arc<dyn EventSink>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_external_connection_get_no_events() {
        assert!(!AppType::from_code(3).delivers_events());
        assert!(!AppType::from_code(4).delivers_events());
        assert!(AppType::from_code(0).delivers_events());
        assert!(AppType::from_code(-1).delivers_events());
        assert_eq!(AppType::from_code(42), AppType::Unknown);
    }
}
