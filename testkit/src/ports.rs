//! Loopback ports for servers a test starts.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

/// Every port [`free_port`] has handed out in this process.
static GIVEN: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Default::default);

/// A port free on 127.0.0.1 right now (the OS picks it), and never handed out before by this
/// process: a stack that asks for six ports gets six different ones. Another process may
/// still take it before the server binds it.
pub fn free_port() -> u16 {
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if given.insert(port) {
            return port;
        }
    }
}
