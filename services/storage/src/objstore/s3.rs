//! The S3 object store over `minio-rsc`.
//!
//! Requests are built with the `minio-rsc` executor and sent with `send()` (not `send_ok()`),
//! so that errors are classified from the HTTP status code of the answer. Every request runs
//! under a `tokio::time::timeout`, so a server that accepts connections but never answers
//! (e.g. stopped with SIGSTOP) fails the call after `timeout` instead of hanging.

use super::config::{MAX_PART_SIZE, MIN_PART_SIZE};
use super::config::{ObjectStoreConfig, Secret};
use super::error::{ObjectStoreError, Operation, Result};
use super::store::{ObjectMeta, ObjectStore, local_file_error, validate_key};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use minio_rsc::Minio;
use minio_rsc::client::BaseExecutor;
use minio_rsc::datatype::{FromXml, ListBucketResult, Part};
use minio_rsc::http::{Method, StatusCode, header};
use minio_rsc::provider::StaticProvider;
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resolved S3 settings (from [`ObjectStoreConfig`]).
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `host[:port]`, no scheme.
    pub endpoint: String,
    /// https when true.
    pub secure: bool,
    pub bucket: String,
    pub region: String,
    pub access_key: Secret,
    pub secret_key: Secret,
    pub path_style: bool,
    /// Timeout of one request (for streamed downloads: of each read).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Objects larger than this go up as multipart uploads in parts of this size.
    pub part_size: usize,
    /// Keys asked for per listing request (S3 caps it at 1000).
    pub list_page_size: usize,
}

impl S3Settings {
    pub fn from_config(c: &ObjectStoreConfig) -> anyhow::Result<Self> {
        let raw = c
            .endpoint
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no S3 endpoint configured"))?
            .trim()
            .trim_end_matches('/');
        let (secure, endpoint) = if let Some(rest) = raw.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = raw.strip_prefix("https://") {
            (true, rest)
        } else {
            (true, raw)
        };
        if endpoint.is_empty() || endpoint.contains('/') {
            anyhow::bail!(
                "--s3-endpoint must be `http(s)://host[:port]` without a path, got `{raw}`"
            );
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&c.part_size) {
            anyhow::bail!(
                "--s3-part-size must be between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB), got {}",
                c.part_size
            );
        }
        if c.timeout_ms == 0 {
            anyhow::bail!("--s3-timeout-ms must be positive");
        }
        let timeout = Duration::from_millis(c.timeout_ms);
        Ok(S3Settings {
            endpoint: endpoint.to_string(),
            secure,
            bucket: c.bucket.clone(),
            region: c.region.clone(),
            access_key: c.access_key.clone(),
            secret_key: c.secret_key.clone(),
            path_style: c.path_style,
            timeout,
            connect_timeout: Duration::from_millis(c.connect_timeout_ms.max(1)).min(timeout),
            part_size: c.part_size as usize,
            list_page_size: 1000,
        })
    }
}

/// Objects in one S3 bucket.
pub struct S3Store {
    client: Minio,
    settings: S3Settings,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("store", &self.describe())
            .field("settings", &self.settings)
            .finish()
    }
}

/// Classify a failed HTTP answer from its status code (and, for 404 and 409 only, the S3
/// error *code* field, which tells a missing key from a missing bucket).
fn classify_status(
    op: Operation,
    key: &str,
    status: StatusCode,
    s3_code: Option<&str>,
    detail: String,
) -> ObjectStoreError {
    match status.as_u16() {
        404 if s3_code == Some("NoSuchBucket") => ObjectStoreError::permanent(op, key, detail),
        404 if matches!(op, Operation::Get | Operation::Head) => ObjectStoreError::not_found(key),
        408 | 429 => ObjectStoreError::transient(op, key, detail),
        s if s >= 500 => ObjectStoreError::transient(op, key, detail),
        _ => ObjectStoreError::permanent(op, key, detail),
    }
}

/// Classify a `reqwest` error from its class: no answer at all (connect, timeout, reset while
/// sending or reading) is transient; an answer carries a status; a request that could not
/// be built is permanent.
fn classify_reqwest(op: Operation, key: &str, e: reqwest::Error) -> ObjectStoreError {
    if let Some(status) = e.status() {
        return classify_status(op, key, status, None, e.to_string());
    }
    if e.is_builder() {
        return ObjectStoreError::permanent(op, key, e);
    }
    // is_connect, is_timeout, is_request, is_body, is_decode: the exchange broke.
    let detail = std::error::Error::source(&e)
        .map(|s| format!("{e}: {s}"))
        .unwrap_or_else(|| e.to_string());
    ObjectStoreError::transient(op, key, detail)
}

/// Classify an error returned by a `minio-rsc` call by its variant.
fn classify_minio(op: Operation, key: &str, e: minio_rsc::error::Error) -> ObjectStoreError {
    use minio_rsc::error::Error as E;
    match e {
        E::HttpError(e) => classify_reqwest(op, key, e),
        E::UnknownResponse(resp) => {
            let status = resp.status();
            classify_status(
                op,
                key,
                status,
                None,
                format!("unexpected answer: HTTP {status}"),
            )
        }
        // Only the multipart helpers return parsed S3 errors; the status is gone by then, so
        // the S3 error code decides (it is a closed set documented by AWS).
        E::S3Error(s3) => {
            let detail = format!("{}: {}", s3.code, s3.message);
            match s3.code.as_str() {
                "InternalError" | "ServiceUnavailable" | "SlowDown" | "RequestTimeout"
                | "OperationAborted" => ObjectStoreError::transient(op, key, detail),
                "NoSuchKey" if matches!(op, Operation::Get | Operation::Head) => {
                    ObjectStoreError::not_found(key)
                }
                _ => ObjectStoreError::permanent(op, key, detail),
            }
        }
        E::IoError(io) => ObjectStoreError::from_io(op, key, &io),
        other => ObjectStoreError::permanent(op, key, other),
    }
}

/// A non-2xx answer: its status, the S3 error code from the body if there is one, and a
/// description for people.
struct ErrorAnswer {
    status: StatusCode,
    code: Option<String>,
    detail: String,
}

impl ErrorAnswer {
    async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let parsed = minio_rsc::error::S3Error::try_from(body.as_str()).ok();
        let detail = match &parsed {
            Some(e) => format!("HTTP {status} {}: {}", e.code, e.message),
            None if body.is_empty() => format!("HTTP {status}"),
            None => format!(
                "HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            ),
        };
        ErrorAnswer {
            status,
            code: parsed.map(|e| e.code),
            detail,
        }
    }

    fn into_error(self, op: Operation, key: &str) -> ObjectStoreError {
        classify_status(op, key, self.status, self.code.as_deref(), self.detail)
    }
}

/// The next part of a multipart upload: from memory or read from a file.
enum PartSource {
    Bytes(Bytes),
    File(tokio::fs::File),
}

impl PartSource {
    async fn next(&mut self, size: usize) -> std::io::Result<Option<Bytes>> {
        match self {
            PartSource::Bytes(b) => {
                if b.is_empty() {
                    return Ok(None);
                }
                let n = size.min(b.len());
                Ok(Some(b.split_to(n)))
            }
            PartSource::File(f) => {
                let mut buf = BytesMut::zeroed(size);
                let mut filled = 0;
                while filled < size {
                    let n = f.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(None);
                }
                buf.truncate(filled);
                Ok(Some(buf.freeze()))
            }
        }
    }
}

impl S3Store {
    pub fn new(settings: S3Settings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .https_only(settings.secure)
            .build()?;
        let client = Minio::builder()
            .endpoint(settings.endpoint.clone())
            .secure(settings.secure)
            .region(settings.region.clone())
            .virtual_hosted_style(!settings.path_style)
            .provider(StaticProvider::new(
                settings.access_key.expose(),
                settings.secret_key.expose(),
                None,
            ))
            .client(http)
            .build()
            .map_err(|e| anyhow::anyhow!("invalid S3 settings: {e}"))?;
        Ok(S3Store { client, settings })
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    fn timeout_error(&self, op: Operation, key: &str) -> ObjectStoreError {
        ObjectStoreError::transient(
            op,
            key,
            format!(
                "no answer from {} within {} ms",
                self.settings.endpoint,
                self.settings.timeout.as_millis()
            ),
        )
    }

    /// Run one request (sending and reading the answer) under the request timeout.
    async fn timed<T>(
        &self,
        op: Operation,
        key: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.settings.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout_error(op, key)),
        }
    }

    fn exec(&self, method: Method) -> BaseExecutor<'_> {
        self.client
            .executor(method)
            .bucket_name(self.settings.bucket.clone())
    }

    async fn send(
        &self,
        op: Operation,
        key: &str,
        exec: BaseExecutor<'_>,
    ) -> Result<reqwest::Response> {
        exec.send().await.map_err(|e| classify_minio(op, key, e))
    }

    /// The error for a non-2xx answer; reads the body (an S3 error document) for the code.
    async fn answer_error(op: Operation, key: &str, resp: reqwest::Response) -> ObjectStoreError {
        ErrorAnswer::read(resp).await.into_error(op, key)
    }

    /// Create the bucket if it does not exist.
    pub async fn ensure_bucket(&self) -> Result<()> {
        let bucket = self.settings.bucket.clone();
        let exists = self
            .timed(Operation::Head, &bucket, async {
                let resp = self
                    .send(Operation::Head, &bucket, self.exec(Method::HEAD))
                    .await?;
                match resp.status() {
                    s if s.is_success() => Ok(true),
                    StatusCode::NOT_FOUND => Ok(false),
                    _ => Err(Self::answer_error(Operation::Head, &bucket, resp).await),
                }
            })
            .await?;
        if exists {
            return Ok(());
        }
        let body = if self.settings.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.settings.region
            )
        };
        self.timed(Operation::Put, &bucket, async {
            let resp = self
                .send(
                    Operation::Put,
                    &bucket,
                    self.exec(Method::PUT).body(Bytes::from(body)),
                )
                .await?;
            if resp.status().is_success() {
                tracing::info!(bucket = %bucket, "created object store bucket");
                return Ok(());
            }
            let answer = ErrorAnswer::read(resp).await;
            if answer.code.as_deref() == Some("BucketAlreadyOwnedByYou") {
                // Someone (maybe another AkiDB node) created it meanwhile.
                return Ok(());
            }
            Err(answer.into_error(Operation::Put, &bucket))
        })
        .await
    }

    /// Retry [`Self::ensure_bucket`] with backoff (1 s doubling to 60 s) until it succeeds or
    /// fails permanently. For start-up while the store is unreachable.
    pub async fn ensure_bucket_until_ok(&self) {
        let mut delay = Duration::from_secs(1);
        loop {
            tokio::time::sleep(delay).await;
            match self.ensure_bucket().await {
                Ok(()) => {
                    tracing::info!(store = %self.describe(), "object store reachable; bucket ready");
                    return;
                }
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "object store still unreachable");
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
                Err(e) => {
                    tracing::error!(error = %e, "object store bucket check failed permanently");
                    return;
                }
            }
        }
    }

    async fn put_single(&self, key: &str, data: Bytes) -> Result<()> {
        let op = Operation::Put;
        self.timed(op, key, async {
            let resp = self
                .send(op, key, self.exec(Method::PUT).object_name(key).body(data))
                .await?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(Self::answer_error(op, key, resp).await)
            }
        })
        .await
    }

    /// Upload in parts of `part_size`; aborts the upload (best effort) on failure.
    async fn put_multipart(&self, key: &str, mut src: PartSource) -> Result<u64> {
        let op = Operation::Put;
        let bucket = self.settings.bucket.clone();
        let task = self
            .timed(op, key, async {
                self.client
                    .create_multipart_upload(bucket.as_str(), key)
                    .await
                    .map_err(|e| classify_minio(op, key, e))
            })
            .await?;
        let res: Result<u64> = async {
            let mut parts: Vec<Part> = Vec::new();
            let mut total = 0u64;
            loop {
                let chunk = src.next(self.settings.part_size).await.map_err(|e| {
                    ObjectStoreError::permanent(op, key, format!("reading source: {e}"))
                })?;
                let Some(chunk) = chunk else { break };
                total += chunk.len() as u64;
                let n = parts.len() + 1;
                let part = self
                    .timed(op, key, async {
                        self.client
                            .upload_part(&task, n, chunk)
                            .await
                            .map_err(|e| classify_minio(op, key, e))
                    })
                    .await?;
                parts.push(part);
            }
            self.timed(op, key, async {
                self.client
                    .complete_multipart_upload(&task, parts, None)
                    .await
                    .map_err(|e| classify_minio(op, key, e))
            })
            .await?;
            Ok(total)
        }
        .await;
        if res.is_err() {
            let abort = tokio::time::timeout(
                self.settings.timeout,
                self.client.abort_multipart_upload(&task),
            )
            .await;
            if !matches!(abort, Ok(Ok(()))) {
                tracing::debug!(
                    key,
                    "could not abort a failed multipart upload; the bucket's lifecycle rules should expire it"
                );
            }
        }
        res
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(Operation::Put, key)?;
        if data.len() > self.settings.part_size {
            self.put_multipart(key, PartSource::Bytes(data))
                .await
                .map(|_| ())
        } else {
            self.put_single(key, data).await
        }
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        let op = Operation::Put;
        validate_key(op, key)?;
        if data.len() > self.settings.part_size {
            return Err(ObjectStoreError::permanent(
                op,
                key,
                format!(
                    "{} bytes is more than a conditional put takes here (one part, --s3-part-size {})",
                    data.len(),
                    self.settings.part_size
                ),
            ));
        }
        self.timed(op, key, async {
            let resp = self
                .send(
                    op,
                    key,
                    self.exec(Method::PUT)
                        .object_name(key)
                        .header("If-None-Match", "*")
                        .body(data),
                )
                .await?;
            match resp.status().as_u16() {
                s if (200..300).contains(&s) => Ok(true),
                // Precondition failed: the key exists.
                412 => Ok(false),
                // A conditional put racing another on the same key (AWS): try again.
                409 => Err(ObjectStoreError::transient(
                    op,
                    key,
                    "HTTP 409: a concurrent conditional write to the same key",
                )),
                _ => Err(Self::answer_error(op, key, resp).await),
            }
        })
        .await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<u64> {
        validate_key(Operation::Put, key)?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| local_file_error(key, path, &e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| local_file_error(key, path, &e))?
            .len();
        if len as usize > self.settings.part_size {
            self.put_multipart(key, PartSource::File(file)).await
        } else {
            let data = tokio::fs::read(path)
                .await
                .map_err(|e| local_file_error(key, path, &e))?;
            let n = data.len() as u64;
            self.put_single(key, Bytes::from(data)).await?;
            Ok(n)
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let op = Operation::Get;
        validate_key(op, key)?;
        self.timed(op, key, async {
            let resp = self
                .send(op, key, self.exec(Method::GET).object_name(key))
                .await?;
            if !resp.status().is_success() {
                return Err(Self::answer_error(op, key, resp).await);
            }
            resp.bytes().await.map_err(|e| classify_reqwest(op, key, e))
        })
        .await
    }

    async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64> {
        let op = Operation::Get;
        validate_key(op, key)?;
        let mut resp = self
            .timed(op, key, async {
                let resp = self
                    .send(op, key, self.exec(Method::GET).object_name(key))
                    .await?;
                if resp.status().is_success() {
                    Ok(resp)
                } else {
                    Err(Self::answer_error(op, key, resp).await)
                }
            })
            .await?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            uuid::Uuid::new_v4().simple()
        ));
        let local = |e: std::io::Error| {
            ObjectStoreError::permanent(op, key, format!("writing {}: {e}", path.display()))
        };
        let res: Result<u64> = async {
            let mut f = tokio::fs::File::create(&tmp).await.map_err(local)?;
            let mut total = 0u64;
            // The timeout bounds each read, so a large object may take longer than one
            // timeout in total but a stalled transfer still fails fast.
            loop {
                let chunk = match tokio::time::timeout(self.settings.timeout, resp.chunk()).await {
                    Err(_) => return Err(self.timeout_error(op, key)),
                    Ok(Err(e)) => return Err(classify_reqwest(op, key, e)),
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(c))) => c,
                };
                total += chunk.len() as u64;
                f.write_all(&chunk).await.map_err(local)?;
            }
            f.sync_all().await.map_err(local)?;
            drop(f);
            tokio::fs::rename(&tmp, path).await.map_err(local)?;
            let d = dir.to_path_buf();
            tokio::task::spawn_blocking(move || crate::fsutil::sync_dir(&d))
                .await
                .map_err(|e| ObjectStoreError::permanent(op, key, e))?
                .map_err(local)?;
            Ok(total)
        }
        .await;
        if res.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        res
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let op = Operation::Head;
        validate_key(op, key)?;
        self.timed(op, key, async {
            let resp = self
                .send(op, key, self.exec(Method::HEAD).object_name(key))
                .await?;
            if !resp.status().is_success() {
                return Err(Self::answer_error(op, key, resp).await);
            }
            let size = resp
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    ObjectStoreError::permanent(op, key, "answer without a Content-Length")
                })?;
            Ok(ObjectMeta {
                key: key.to_string(),
                size,
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let op = Operation::List;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page: ListBucketResult = self
                .timed(op, prefix, async {
                    let mut exec = self.exec(Method::GET).query("list-type", "2").query(
                        "max-keys",
                        self.settings.list_page_size.clamp(1, 1000).to_string(),
                    );
                    if !prefix.is_empty() {
                        exec = exec.query("prefix", prefix);
                    }
                    if let Some(t) = &token {
                        exec = exec.query("continuation-token", t.as_str());
                    }
                    let resp = self.send(op, prefix, exec).await?;
                    if !resp.status().is_success() {
                        return Err(Self::answer_error(op, prefix, resp).await);
                    }
                    let text = resp
                        .text()
                        .await
                        .map_err(|e| classify_reqwest(op, prefix, e))?;
                    ListBucketResult::from_xml(text).map_err(|e| {
                        ObjectStoreError::permanent(op, prefix, format!("unparseable listing: {e}"))
                    })
                })
                .await?;
            out.extend(page.contents.into_iter().map(|o| ObjectMeta {
                key: o.key,
                size: o.size,
            }));
            if page.is_truncated && !page.next_continuation_token.is_empty() {
                token = Some(page.next_continuation_token);
            } else {
                break;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let op = Operation::Delete;
        validate_key(op, key)?;
        self.timed(op, key, async {
            let resp = self
                .send(op, key, self.exec(Method::DELETE).object_name(key))
                .await?;
            if resp.status().is_success() {
                return Ok(());
            }
            let answer = ErrorAnswer::read(resp).await;
            if answer.status == StatusCode::NOT_FOUND && answer.code.as_deref() == Some("NoSuchKey")
            {
                // Some servers answer 404 NoSuchKey instead of 204: already gone.
                return Ok(());
            }
            Err(answer.into_error(op, key))
        })
        .await
    }

    fn describe(&self) -> String {
        format!(
            "s3://{} at {}://{}",
            self.settings.bucket,
            if self.settings.secure {
                "https"
            } else {
                "http"
            },
            self.settings.endpoint
        )
    }

    fn is_remote(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::error::ErrorKind;

    #[test]
    fn status_classification() {
        let k = |op, s: u16, code: Option<&str>| {
            classify_status(
                op,
                "k",
                StatusCode::from_u16(s).unwrap(),
                code,
                String::new(),
            )
            .kind()
        };
        assert_eq!(
            k(Operation::Get, 404, Some("NoSuchKey")),
            ErrorKind::NotFound
        );
        assert_eq!(k(Operation::Head, 404, None), ErrorKind::NotFound);
        assert_eq!(
            k(Operation::Get, 404, Some("NoSuchBucket")),
            ErrorKind::Permanent
        );
        assert_eq!(k(Operation::Put, 404, None), ErrorKind::Permanent);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(k(Operation::Put, s, None), ErrorKind::Transient, "{s}");
        }
        for s in [400, 401, 403, 405, 409, 411, 412, 416] {
            assert_eq!(k(Operation::Put, s, None), ErrorKind::Permanent, "{s}");
        }
    }

    #[test]
    fn endpoint_parsing() {
        let mut c = ObjectStoreConfig {
            endpoint: Some("http://127.0.0.1:9000/".into()),
            ..Default::default()
        };
        let s = S3Settings::from_config(&c).unwrap();
        assert_eq!(s.endpoint, "127.0.0.1:9000");
        assert!(!s.secure);
        c.endpoint = Some("s3.example.com".into());
        let s = S3Settings::from_config(&c).unwrap();
        assert!(s.secure);
        c.endpoint = Some("http://host:9000/path".into());
        assert!(S3Settings::from_config(&c).is_err());
        c.endpoint = Some("http://host:9000".into());
        c.part_size = 1024;
        assert!(S3Settings::from_config(&c).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = ObjectStoreConfig {
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key: Secret::new("AKIDBACCESSKEY"),
            secret_key: Secret::new("topsecretvalue"),
            ..Default::default()
        };
        let store = S3Store::new(S3Settings::from_config(&c).unwrap()).unwrap();
        let s = format!("{store:?}");
        assert!(
            !s.contains("topsecretvalue") && !s.contains("AKIDBACCESSKEY"),
            "{s}"
        );
        assert_eq!(store.describe(), "s3://akidb at http://127.0.0.1:9000");
    }

    #[tokio::test]
    async fn refused_connection_is_transient() {
        // A port nobody listens on: bind then drop.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = ObjectStoreConfig {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            timeout_ms: 2_000,
            ..Default::default()
        };
        let store = S3Store::new(S3Settings::from_config(&c).unwrap()).unwrap();
        let e = store.put("k", Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        let e = store.get("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    }

    #[tokio::test]
    async fn unresponsive_server_times_out() {
        // Accepts connections, never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let c = ObjectStoreConfig {
            endpoint: Some(format!("http://{addr}")),
            timeout_ms: 300,
            ..Default::default()
        };
        let store = S3Store::new(S3Settings::from_config(&c).unwrap()).unwrap();
        let t = std::time::Instant::now();
        let e = store.head("k").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
}
