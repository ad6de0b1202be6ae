//! The tower layer every gRPC server runs (inside the instrumentation layer, so that refused
//! calls are counted and timed like any other, and before any handler or body decoding: no
//! work is done for a caller that is not allowed it).
//!
//! - keys off ([`Auth::Off`]): every call passes, as on a trusted machine;
//! - public ([`Auth::Public`], query and ingest): a call needs `authorization: Bearer <key>`
//!   with a key in force and the role its method needs ([`crate::rights`]); health needs
//!   nothing; storage's own API never takes a public key;
//! - internal ([`Auth::Internal`], storage and the aggregator): only the internal key.
//!
//! A missing, malformed or unknown key (two `authorization` headers, another scheme, a byte
//! changed) is UNAUTHENTICATED with one message for all; a valid key without the right is
//! PERMISSION_DENIED. Nothing else a client sends (`x-internal`, `traceparent`,
//! `akidb-untraced`, ...) changes who it is.

use crate::audit::{self, Outcome};
use crate::keys::Role;
use crate::principal::Principal;
use crate::rights::{Right, audited, right_of};
use crate::store::{InternalKey, KeyStore};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::{Code, Status};
use tower::{Layer, Service};

/// Who a server lets in.
#[derive(Clone, Debug)]
pub enum Auth {
    Off,
    Public(Arc<KeyStore>),
    Internal(InternalKey),
}

/// The key id of the internal key's principal (its calls are counted, not audited: the front
/// door that made them audited the caller's call).
pub const INTERNAL: &str = "internal";

/// The one message of every UNAUTHENTICATED answer: it does not say which of missing,
/// malformed or unknown it was.
pub const UNAUTHENTICATED: &str = "missing or invalid API key: send `authorization: Bearer <key>` with a key in force (`akidb keys create`)";

impl Auth {
    /// Decide a call to `path` with these headers: who it is (`None`: nobody needs to be),
    /// or why not (with who, when the key was valid but lacked the right).
    pub fn decide(
        &self,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<Principal>, (Status, Option<Principal>)> {
        self.judge(path, headers, true)
    }

    /// Whether [`Auth::decide`] would let a call to `path` with these headers in, its key's
    /// rate limit aside, without taking from that limit: the REST front asks before it reads
    /// a body, so that a caller who will be refused costs no parsing (the call it then makes
    /// is decided, counted and audited by the layer as any other).
    pub fn permits(&self, path: &str, headers: &http::HeaderMap) -> bool {
        self.judge(path, headers, false).is_ok()
    }

    fn judge(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        admit: bool,
    ) -> Result<Option<Principal>, (Status, Option<Principal>)> {
        let unauthenticated = || (Status::unauthenticated(UNAUTHENTICATED), None);
        let right = right_of(path);
        if matches!(self, Auth::Off) || right == Some(Right::Open) {
            return Ok(None);
        }
        let key = bearer(headers).ok_or_else(unauthenticated)?;
        match self {
            Auth::Off => Ok(None),
            Auth::Internal(ik) => {
                if ik.matches(key) {
                    Ok(Some(Principal::new(INTERNAL, Role::Admin, vec![])))
                } else {
                    Err(unauthenticated())
                }
            }
            Auth::Public(store) => {
                let who = store.authenticate(key).ok_or_else(unauthenticated)?;
                let refuse = match right {
                    Some(Right::Role(need)) if who.role >= need => {
                        if !admit {
                            return Ok(Some(who));
                        }
                        return match store.admit(&who.key_id) {
                            Ok(()) => Ok(Some(who)),
                            Err(wait) => {
                                let ms = wait.as_millis().max(1);
                                let mut s = Status::resource_exhausted(format!(
                                    "key {} is over its rate limit; retry in {ms} ms",
                                    who.key_id
                                ));
                                if let Ok(v) = ms.to_string().parse() {
                                    s.metadata_mut().insert("retry-after-ms", v);
                                }
                                Err((s, Some(who)))
                            }
                        };
                    }
                    Some(Right::Open) => return Ok(None),
                    Some(Right::Role(need)) => format!(
                        "key {} has role {}; {path} needs {}",
                        who.key_id,
                        who.role.as_str(),
                        need.as_str()
                    ),
                    Some(Right::Internal) => {
                        format!("{path} is internal: call the query and ingest services instead")
                    }
                    None => format!("{path} is not a method of the API"),
                };
                Err((Status::permission_denied(refuse), Some(who)))
            }
        }
    }
}

/// The key of the only `authorization` header, when it is `Bearer <key>` (scheme in any case).
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let v = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let v = v.to_str().ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// The layer of [`Auth`].
#[derive(Clone, Debug)]
pub struct AuthLayer(pub Auth);

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            auth: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AuthService<S> {
    auth: Auth,
    inner: S,
}

/// The gRPC code of a response (`grpc-status` of a trailers-only response, else OK).
fn code_of<B>(r: &http::Response<B>) -> Code {
    Code::from_i32(akidb_instrumentation::layers::response_code(r.headers()))
}

impl<S, B, RB> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if matches!(self.auth, Auth::Off) {
            return Box::pin(self.inner.call(req));
        }
        let path = req.uri().path().to_string();
        match self.auth.decide(&path, req.headers()) {
            Err((status, who)) => {
                let outcome = match status.code() {
                    Code::Unauthenticated => Outcome::Unauthenticated,
                    Code::ResourceExhausted => Outcome::RateLimited,
                    _ => Outcome::Denied,
                };
                audit::count(outcome);
                if outcome == Outcome::Denied || audited(&path) {
                    audit::line(
                        who.as_ref().map(|p| p.key_id.as_str()),
                        who.as_ref().map(|p| p.role),
                        &path,
                        None,
                        outcome,
                        status.code(),
                    );
                }
                Box::pin(async move { Ok(status.into_http()) })
            }
            Ok(None) => Box::pin(self.inner.call(req)),
            Ok(Some(who)) => {
                let who = Arc::new(who);
                req.extensions_mut().insert(who.clone());
                let fut = self.inner.call(req);
                Box::pin(async move {
                    let res = fut.await;
                    let code = match &res {
                        Ok(r) => code_of(r),
                        Err(_) => Code::Unknown,
                    };
                    // A handler refuses a collection-scoped key the collection it named.
                    let outcome = if code == Code::PermissionDenied {
                        Outcome::Denied
                    } else {
                        Outcome::Allowed
                    };
                    audit::count(outcome);
                    if who.key_id != INTERNAL && (outcome == Outcome::Denied || audited(&path)) {
                        audit::line(
                            Some(&who.key_id),
                            Some(who.role),
                            &path,
                            who.collection.get().map(String::as_str),
                            outcome,
                            code,
                        );
                    }
                    res
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyFile, new_internal_key};

    fn headers(v: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for x in v {
            h.append(http::header::AUTHORIZATION, x.parse().unwrap());
        }
        h
    }

    #[test]
    fn decisions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys.json");
        let read = KeyFile::create_key(&p, Role::Read, vec![]).unwrap();
        let admin = KeyFile::create_key(&p, Role::Admin, vec![]).unwrap();
        let auth = Auth::Public(KeyStore::open(&p).unwrap());
        let search = "/akidb.v1.QueryService/Search";
        let upsert = "/akidb.v1.IngestService/Upsert";
        let code = |path: &str, h: &[&str]| {
            auth.decide(path, &headers(h))
                .map(|_| ())
                .map_err(|(s, _)| s.code())
        };
        let bearer = |k: &str| format!("Bearer {k}");
        assert_eq!(code(search, &[&bearer(&read)]), Ok(()));
        assert_eq!(code(search, &[&format!("bearer {read}")]), Ok(()));
        assert_eq!(code(upsert, &[&bearer(&read)]), Err(Code::PermissionDenied));
        assert_eq!(code(upsert, &[&bearer(&admin)]), Ok(()));
        assert_eq!(
            code("/akidb.v1.StorageService/Upsert", &[&bearer(&admin)]),
            Err(Code::PermissionDenied)
        );
        for bad in [
            vec![],
            vec![read.clone()],
            vec![format!("Basic {read}")],
            vec![bearer(&read), bearer(&read)],
            vec![bearer(&read[..read.len() - 1])],
            vec![bearer(&new_internal_key())],
        ] {
            let h: Vec<&str> = bad.iter().map(String::as_str).collect();
            let (e, who) = auth.decide(search, &headers(&h)).unwrap_err();
            assert!(who.is_none());
            assert_eq!(e.code(), Code::Unauthenticated, "{bad:?}");
            assert_eq!(e.message(), UNAUTHENTICATED);
            assert!(!e.message().contains(&read[6..]));
        }
        assert_eq!(code("/grpc.health.v1.Health/Check", &[]), Ok(()));
        // `permits` agrees with `decide` and takes nothing from a rate limit.
        assert!(auth.permits(search, &headers(&[&bearer(&read)])));
        assert!(!auth.permits(upsert, &headers(&[&bearer(&read)])));
        assert!(!auth.permits(search, &headers(&[])));
        assert!(Auth::Off.permits(upsert, &headers(&[])));
        // Internal: only the internal key; public keys are nobody there.
        let ik = new_internal_key();
        let internal = Auth::Internal(InternalKey::new(&ik));
        let icode = |path: &str, h: &[&str]| {
            internal
                .decide(path, &headers(h))
                .map(|_| ())
                .map_err(|(s, _)| s.code())
        };
        assert_eq!(
            icode("/akidb.v1.StorageService/Upsert", &[&bearer(&ik)]),
            Ok(())
        );
        assert_eq!(
            icode("/akidb.v1.StorageService/Upsert", &[&bearer(&admin)]),
            Err(Code::Unauthenticated)
        );
        assert_eq!(icode("/grpc.health.v1.Health/Check", &[]), Ok(()));
    }
}
