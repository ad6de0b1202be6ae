//! Scraping: the HTTP fetch of a target's `/metrics`, OpenMetrics asked first (exemplars), and
//! its parse ([`akidb_instrumentation::exposition`]).

use akidb_instrumentation::exposition::{
    Format, MetricFamily, ParseError, SCRAPE_ACCEPT, parse_as,
};
use std::fmt;
use std::time::{Duration, Instant};

/// Why a scrape failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrapeError {
    Timeout,
    Http(String),
    Status(u16),
    Parse(ParseError),
}

impl fmt::Display for ScrapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScrapeError::Timeout => write!(f, "scrape timed out"),
            ScrapeError::Http(e) => write!(f, "{e}"),
            ScrapeError::Status(s) => write!(f, "HTTP status {s}"),
            ScrapeError::Parse(e) => write!(f, "bad exposition: {e}"),
        }
    }
}

impl std::error::Error for ScrapeError {}

/// The result of one scrape of one target.
#[derive(Debug, Clone)]
pub struct ScrapeResult {
    pub duration: Duration,
    pub result: Result<Vec<MetricFamily>, ScrapeError>,
}

/// Fetch and parse `url` within `timeout`.
pub async fn scrape(client: &reqwest::Client, url: &str, timeout: Duration) -> ScrapeResult {
    let start = Instant::now();
    let fetch = async {
        let resp = client
            .get(url)
            .header(http::header::ACCEPT, SCRAPE_ACCEPT)
            .timeout(timeout)
            .send()
            .await
            .map_err(http_error)?;
        if !resp.status().is_success() {
            return Err(ScrapeError::Status(resp.status().as_u16()));
        }
        let format = Format::of_content_type(
            resp.headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp.text().await.map_err(http_error)?;
        parse_as(&body, format).map_err(ScrapeError::Parse)
    };
    let result = match tokio::time::timeout(timeout, fetch).await {
        Ok(r) => r,
        Err(_) => Err(ScrapeError::Timeout),
    };
    ScrapeResult {
        duration: start.elapsed(),
        result,
    }
}

fn http_error(e: reqwest::Error) -> ScrapeError {
    if e.is_timeout() {
        ScrapeError::Timeout
    } else {
        // The innermost cause says what happened (connection refused, reset, ...).
        let mut msg = e.to_string();
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = src {
            msg = format!("{e}: {s}");
            src = s.source();
        }
        ScrapeError::Http(msg)
    }
}
