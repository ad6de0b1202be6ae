//! Aliases: the one meaning of an UpdateAliases call, shared by a single storage node (its
//! catalog keeps the aliases) and a cluster (etcd keeps them).

use crate::v1 as pb;
use crate::validate::collection_name;
use std::collections::BTreeMap;
use tonic::Status;

/// Most aliases one call may change.
pub const MAX_ACTIONS: usize = 100;

/// Apply `actions` in order to `aliases` (alias → collection). `is_collection` says whether a
/// collection of that name exists. On an error `aliases` may be half-changed: apply to a copy
/// and keep it only on `Ok`, so that the call is all or nothing.
pub fn apply(
    aliases: &mut BTreeMap<String, String>,
    is_collection: impl Fn(&str) -> bool,
    actions: &[pb::AliasAction],
) -> Result<(), Status> {
    use pb::alias_action::Action;
    if actions.is_empty() {
        return Err(Status::invalid_argument(
            "update_aliases needs at least one action (create or delete)",
        ));
    }
    if actions.len() > MAX_ACTIONS {
        return Err(Status::invalid_argument(format!(
            "update_aliases takes at most {MAX_ACTIONS} actions, got {}; split the call",
            actions.len()
        )));
    }
    for (i, a) in actions.iter().enumerate() {
        match &a.action {
            Some(Action::Create(pb::Alias { alias, collection })) => {
                collection_name(alias).map_err(|e| {
                    Status::invalid_argument(format!("action #{i}: alias: {}", e.message()))
                })?;
                collection_name(collection).map_err(|e| {
                    Status::invalid_argument(format!("action #{i}: collection: {}", e.message()))
                })?;
                if is_collection(alias) {
                    return Err(Status::invalid_argument(format!(
                        "action #{i}: alias `{alias}` has the name of a collection; an alias may not hide one"
                    )));
                }
                if let Some(there) = aliases.get(alias) {
                    return Err(Status::already_exists(format!(
                        "action #{i}: alias `{alias}` exists (it names `{there}`); delete it first, in the same call to swap"
                    )));
                }
                if aliases.contains_key(collection) {
                    return Err(Status::invalid_argument(format!(
                        "action #{i}: `{collection}` is an alias; an alias names a collection, not another alias"
                    )));
                }
                if !is_collection(collection) {
                    return Err(Status::not_found(format!(
                        "action #{i}: collection `{collection}` does not exist"
                    )));
                }
                aliases.insert(alias.clone(), collection.clone());
            }
            Some(Action::Delete(alias)) => {
                if aliases.remove(alias).is_none() {
                    return Err(Status::not_found(format!(
                        "action #{i}: alias `{alias}` does not exist"
                    )));
                }
            }
            None => {
                return Err(Status::invalid_argument(format!(
                    "action #{i} is empty; set `create` or `delete`"
                )));
            }
        }
    }
    Ok(())
}

/// `aliases` as the API lists them.
pub fn to_pb(aliases: &BTreeMap<String, String>) -> Vec<pb::Alias> {
    aliases
        .iter()
        .map(|(alias, collection)| pb::Alias {
            alias: alias.clone(),
            collection: collection.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::AliasAction;

    fn create(alias: &str, collection: &str) -> AliasAction {
        AliasAction::create(alias, collection)
    }

    fn delete(alias: &str) -> AliasAction {
        AliasAction::delete(alias)
    }

    #[test]
    fn a_call_is_checked_action_by_action_and_a_swap_works() {
        let is = |c: &str| c == "old" || c == "new";
        let mut m = BTreeMap::new();
        apply(&mut m, is, &[create("a", "old")]).unwrap();
        let code = |m: &BTreeMap<String, String>, actions: &[pb::AliasAction]| {
            apply(&mut m.clone(), is, actions).unwrap_err().code()
        };
        use tonic::Code::*;
        assert_eq!(code(&m, &[]), InvalidArgument);
        assert_eq!(
            code(&m, &[pb::AliasAction { action: None }]),
            InvalidArgument
        );
        assert_eq!(code(&m, &[create("a", "new")]), AlreadyExists);
        assert_eq!(
            code(&m, &[create("old", "new")]),
            InvalidArgument,
            "hides a collection"
        );
        assert_eq!(
            code(&m, &[create("b", "a")]),
            InvalidArgument,
            "an alias of an alias"
        );
        assert_eq!(code(&m, &[create("b", "nope")]), NotFound);
        assert_eq!(code(&m, &[create("b/", "old")]), InvalidArgument);
        assert_eq!(code(&m, &[delete("nope")]), NotFound);
        // A cycle cannot be made even in one call: a → b needs b to be a collection.
        assert_eq!(
            code(&m, &[delete("a"), create("a", "b"), create("b", "a")]),
            NotFound
        );
        // The swap.
        apply(&mut m, is, &[delete("a"), create("a", "new")]).unwrap();
        assert_eq!(m["a"], "new");
    }
}
