//! A short client and server life for valgrind memcheck (scripts/test.sh runs this binary under it):
//! connect, text and binary both ways, push events, close, and Done while a peer floods.

mod common;

use std::time::Duration;

use common::{FloodPeer, PyPeer, create_with, finish, serial};
use ws1c_host::{HostOptions, Var};

#[test]
fn a_client_life_is_clean_under_memcheck() {
    let _g = serial();
    let peer = PyPeer::start(&["echo"]);
    let c = create_with("Client", HostOptions::server());
    c.call("Подключиться", &mut [Var::Str(peer.url("/"))])
        .unwrap();
    c.call("Отправить", &mut [Var::Str("привет".into())])
        .unwrap();
    c.call("ОтправитьДвоичныеДанные", &mut [Var::Blob(vec![1, 2, 3])])
        .unwrap();
    let mut args = [Var::I4(20_000), Var::Empty];
    assert_eq!(c.call("Получить", &mut args).unwrap(), Var::Bool(true));
    assert_eq!(args[1], Var::Str("привет".into()));
    assert_eq!(c.call("Получить", &mut args).unwrap(), Var::Bool(true));
    assert_eq!(args[1], Var::Blob(vec![1, 2, 3]));
    c.call("Отключиться", &mut []).unwrap();
    finish(c);

    let c = create_with("Client", HostOptions::default());
    c.set("РежимДоставки", Var::Str("События".into())).unwrap();
    c.call("Подключиться", &mut [Var::Str(peer.url("/"))])
        .unwrap();
    c.call("Отправить", &mut [Var::Str("событие".into())])
        .unwrap();
    assert!(c.conn().wait_events(2, Duration::from_secs(20)));
    c.call("Отключиться", &mut []).unwrap();
    finish(c);

    let flood = FloodPeer::start(None);
    for _ in 0..3 {
        let c = create_with("Client", HostOptions::default());
        c.call("Подключиться", &mut [Var::Str(flood.url())])
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        finish(c);
    }

    // A server life: run, a client, echo, stop, destroy.
    let server = create_with("Server", HostOptions::server());
    let mut args = [Var::Str("127.0.0.1".into()), Var::I4(0)];
    assert_eq!(
        server.call("Запустить", &mut args).unwrap(),
        Var::Bool(true)
    );
    let port = server.get("Порт").unwrap().as_f64().unwrap() as u16;
    let c = create_with("Client", HostOptions::server());
    c.call(
        "Подключиться",
        &mut [Var::Str(format!("ws://127.0.0.1:{port}/m"))],
    )
    .unwrap();
    c.call("Отправить", &mut [Var::Str("эхо".into())]).unwrap();
    let mut got = [Var::I4(20_000), Var::Empty, Var::Empty];
    assert_eq!(server.call("Принять", &mut got).unwrap(), Var::Bool(true));
    assert_eq!(
        server
            .call("Отправить", &mut [got[1].clone(), got[2].clone()])
            .unwrap(),
        Var::I4(1)
    );
    let mut back = [Var::I4(20_000), Var::Empty];
    assert_eq!(c.call("Получить", &mut back).unwrap(), Var::Bool(true));
    assert_eq!(back[1], Var::Str("эхо".into()));
    server.call("Остановить", &mut []).unwrap();
    finish(c);
    finish(server);
    common::assert_memory_clean();
}
