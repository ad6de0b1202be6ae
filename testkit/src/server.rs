//! A server a test runs as a child process (moto, etcd): waited for until it answers HTTP,
//! paused and resumed with signals (a server that stops answering while its connections stay
//! open), killed on drop after a SIGCONT so that a paused one dies too.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Spawn `cmd` (`what` names it in the panic when it cannot start).
    pub fn spawn(cmd: &mut Command, what: &str) -> ServerProcess {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        ServerProcess { child }
    }

    /// Wait until a GET of `url` succeeds, at most 20 s.
    pub async fn wait_http(&self, url: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "{what} did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn signal(&self, sig: i32) -> i32 {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, sig) }
    }

    /// SIGSTOP: the server stops answering; the kernel still accepts connections.
    pub fn pause(&self) {
        assert_eq!(self.signal(libc::SIGSTOP), 0, "SIGSTOP");
    }

    /// SIGCONT after [`ServerProcess::pause`].
    pub fn resume(&self) {
        assert_eq!(self.signal(libc::SIGCONT), 0, "SIGCONT");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
