//! Resumable scans of an index for paged listings.
//!
//! A store's listing cursor is opaque: Workers KV's is a token, not a key, and cannot start
//! "after" a given entry. A listing that fills its page in the middle of a store page
//! therefore answers a cursor naming that store page and how many of its entries were already
//! handed out; the next request reads the same store page again and skips them. Store pages
//! have a fixed size per listing so the count stays meaningful.

use crate::error::{Error, Result};
use crate::store::Store;

/// Where a scan stopped: the store cursor of its page (`None`: the first) and how many of
/// that page's entries it had handed out. On the wire: `{skip}.{store cursor}`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Position {
    page: Option<String>,
    skip: usize,
}

impl Position {
    fn parse(text: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "a next_cursor from a previous page");
        let (skip, page) = text.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            skip: skip.parse().map_err(|_| bad())?,
            page: (!page.is_empty()).then(|| page.to_owned()),
        })
    }

    fn encode(&self) -> String {
        format!("{}.{}", self.skip, self.page.as_deref().unwrap_or(""))
    }
}

/// Index entries under a prefix, one at a time, resumable through [`Scan::cursor`].
pub(crate) struct Scan<'a, S> {
    store: &'a S,
    prefix: String,
    page_size: usize,
    at: Position,
    entries: Option<Vec<String>>,
    following: Option<String>,
}

impl<'a, S: Store> Scan<'a, S> {
    /// Starts at the beginning, or where a previous page's `cursor` left off.
    pub(crate) fn new(
        store: &'a S,
        prefix: String,
        cursor: Option<&str>,
        page_size: usize,
    ) -> Result<Self> {
        Ok(Self {
            store,
            prefix,
            page_size,
            at: cursor.map(Position::parse).transpose()?.unwrap_or_default(),
            entries: None,
            following: None,
        })
    }

    /// The next entry, or `None` at the end of the index.
    pub(crate) async fn next(&mut self) -> Result<Option<String>> {
        loop {
            let entries = match &self.entries {
                Some(entries) => entries,
                None => {
                    let page = self
                        .store
                        .list(&self.prefix, self.at.page.as_deref(), self.page_size)
                        .await?;
                    self.following = page.cursor;
                    self.entries.insert(page.keys)
                }
            };
            if let Some(entry) = entries.get(self.at.skip) {
                self.at.skip += 1;
                return Ok(Some(entry.clone()));
            }
            match self.following.take() {
                Some(next) => {
                    self.at = Position {
                        page: Some(next),
                        skip: 0,
                    };
                    self.entries = None;
                }
                None => return Ok(None),
            }
        }
    }

    /// A cursor that resumes right after the last entry [`Scan::next`] returned.
    pub(crate) fn cursor(&self) -> String {
        self.at.encode()
    }

    /// Up to `limit` of the records the entries are the store keys of (an entry whose record
    /// is gone is passed over), with the cursor of what follows.
    pub(crate) async fn records<T: serde::de::DeserializeOwned>(
        mut self,
        limit: usize,
    ) -> Result<crate::api::Page<T>> {
        let mut items = Vec::new();
        while let Some(entry) = self.next().await? {
            if let Some(record) = crate::store::get_json::<S, T>(self.store, &entry).await? {
                items.push(record);
            }
            if items.len() == limit {
                return Ok(crate::api::Page {
                    items,
                    next_cursor: Some(self.cursor()),
                });
            }
        }
        Ok(crate::api::Page {
            items,
            next_cursor: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;
    use crate::store::{Batch, MemoryStore};

    #[test]
    fn a_scan_resumes_after_the_last_entry_across_store_pages() {
        let store = MemoryStore::default();
        let mut batch = Batch::default();
        for i in 0..23 {
            batch.mark(format!("p:{i:02}"));
        }
        block_on(store.commit(batch)).expect("commit");
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        // Pages of 4 answers over store pages of 5: every stop is mid-page somewhere.
        loop {
            let mut scan = Scan::new(&store, "p:".into(), cursor.as_deref(), 5).expect("cursor");
            let mut answered = 0;
            while answered < 4 {
                match block_on(scan.next()).expect("next") {
                    Some(entry) => {
                        seen.push(entry);
                        answered += 1;
                    }
                    None => break,
                }
            }
            if answered < 4 {
                break;
            }
            cursor = Some(scan.cursor());
        }
        let expected: Vec<String> = (0..23).map(|i| format!("p:{i:02}")).collect();
        assert_eq!(seen, expected);
        assert!(Scan::new(&store, "p:".into(), Some("garbage"), 5).is_err());
        assert!(Scan::new(&store, "p:".into(), Some("x.abc"), 5).is_err());
    }
}
