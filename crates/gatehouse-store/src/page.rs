//! Pagination shared by every list operation.

/// Which page of a list to return (1-based), already clamped by the caller's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Items per page (at least 1).
    pub per_page: u32,
}

impl Page {
    /// Largest page size any list accepts.
    pub const MAX_PER_PAGE: u32 = 1000;

    /// A page, clamped into range (`page >= 1`, `1 <= per_page <= MAX_PER_PAGE`).
    pub fn new(page: u32, per_page: u32) -> Self {
        Self { page: page.max(1), per_page: per_page.clamp(1, Self::MAX_PER_PAGE) }
    }

    pub(crate) fn limit(self) -> i64 {
        i64::from(self.per_page)
    }

    pub(crate) fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }
}

/// One page of results and the total number of matching items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items match in all pages.
    pub total: u64,
}
