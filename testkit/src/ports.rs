//! Loopback ports for servers a test starts.

/// A port free on 127.0.0.1 right now (the OS picks it; another process may take it before
/// the test binds it, which on loopback in a test run does not happen in practice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
