//! Query-string conventions shared by the list routes: typed parsing that names the offending
//! parameter, pagination (`offset`, `limit`) and sorting (`sort=-bytes`).

use std::str::FromStr;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::problem::Problem;

/// Items per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;
/// Largest `offset` accepted: the store pages in SQL, whose integers are signed 64-bit.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// `Query<T>` whose rejection is a 400 problem (unknown parameters included).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|e| Problem::bad_request(e.body_text()))
    }
}

/// Parses parameter `name`, naming it and what was expected on failure.
pub fn parse<T: FromStr>(
    name: &str,
    value: Option<&str>,
    expected: &str,
) -> Result<Option<T>, Problem> {
    value
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                Problem::bad_request(format!(
                    "query parameter `{name}`: invalid value {v:?}, expected {expected}"
                ))
            })
        })
        .transpose()
}

/// Pagination of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Paging {
    /// Items skipped.
    pub offset: usize,
    /// Most items returned.
    pub limit: usize,
}

impl Paging {
    /// From the `offset` and `limit` parameters.
    pub fn parse(offset: Option<&str>, limit: Option<&str>) -> Result<Self, Problem> {
        let offset: u64 = parse("offset", offset, "a non-negative integer")?.unwrap_or(0);
        if offset > MAX_OFFSET {
            return Err(Problem::bad_request(format!(
                "query parameter `offset`: {offset} is over {MAX_OFFSET}"
            )));
        }
        // Lists are in memory or in the store: an offset past `usize` skips everything.
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let limit = parse("limit", limit, "an integer from 1 to 1000")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::bad_request(format!(
                "query parameter `limit`: {limit} is not between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(Self { offset, limit })
    }

    /// One page of `items` (already filtered and sorted), with the total.
    pub fn page<T, U>(self, items: Vec<T>, map: impl FnMut(T) -> U) -> Page<U> {
        let total = items.len();
        let items = items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .map(map)
            .collect();
        Page {
            total,
            offset: self.offset,
            limit: self.limit,
            items,
        }
    }
}

/// A page of a list: `{ "total", "offset", "limit", "items" }`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// Items matching the filters, over all pages.
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// Most items in this page.
    pub limit: usize,
    /// This page.
    pub items: Vec<T>,
}

/// `sort=key` (ascending) or `sort=-key` (descending).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort<K> {
    /// What to sort by.
    pub key: K,
    /// Largest first.
    pub descending: bool,
}

impl<K: Copy> Sort<K> {
    /// Parses `value` against the `keys` a route accepts; `default` when absent.
    pub fn parse(value: Option<&str>, keys: &[(&str, K)], default: Self) -> Result<Self, Problem> {
        let Some(value) = value else {
            return Ok(default);
        };
        let (descending, name) = match value.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, value.strip_prefix('+').unwrap_or(value)),
        };
        keys.iter().find(|(n, _)| *n == name).map(|(_, key)| Self { key: *key, descending }).ok_or_else(|| {
            let names: Vec<_> = keys.iter().map(|(n, _)| *n).collect();
            Problem::bad_request(format!(
                "query parameter `sort`: unknown key {name:?}, expected one of {} (prefix `-` for descending)",
                names.join(", ")
            ))
        })
    }

    /// Orders two items by `value`, honouring the direction.
    pub fn order<T: Ord>(self, a: &T, b: &T) -> std::cmp::Ordering {
        if self.descending { b.cmp(a) } else { a.cmp(b) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paging_bounds_and_defaults() {
        assert_eq!(
            Paging::parse(None, None).unwrap(),
            Paging {
                offset: 0,
                limit: 100
            }
        );
        assert!(Paging::parse(None, Some("0")).is_err());
        assert!(Paging::parse(None, Some("1001")).is_err());
        assert!(Paging::parse(Some("-1"), None).is_err());
        assert!(Paging::parse(Some("9223372036854775807"), None).is_ok());
        assert!(Paging::parse(Some("9223372036854775808"), None).is_err());
        let page = Paging {
            offset: 2,
            limit: 2,
        }
        .page((0..5).collect(), |x| x);
        assert_eq!((page.total, page.items), (5, vec![2, 3]));
    }

    #[test]
    fn sort_keys_and_direction() {
        let keys = [("bytes", 1), ("packets", 2)];
        let default = Sort {
            key: 1,
            descending: true,
        };
        assert_eq!(
            Sort::parse(Some("packets"), &keys, default).unwrap(),
            Sort {
                key: 2,
                descending: false
            }
        );
        assert_eq!(
            Sort::parse(Some("-packets"), &keys, default).unwrap(),
            Sort {
                key: 2,
                descending: true
            }
        );
        assert_eq!(Sort::parse(None, &keys, default).unwrap(), default);
        let err = Sort::parse(Some("colour"), &keys, default).unwrap_err();
        assert!(err.detail.contains("bytes, packets"), "{}", err.detail);
    }
}
