use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string as this id. Ids are opaque: the vendor guarantees
            /// nothing about their shape, not even that they differ across kinds.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The id as the vendor spelled it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_id!(
    /// The UUID of a business (the `{businessId}` of the API path).
    BusinessId
);
string_id!(
    /// The id of a report configuration (`data[].id`).
    ReportId
);
string_id!(
    /// The id of one run of a report (`lastRun.id`).
    RunId
);
string_id!(
    /// A report type id such as `campaign.daily.v1`; the value of the API's `type` filter.
    ReportType
);
