//! A container's ID as the tracker's key: held in the table's own slot, not behind a pointer.
//! Finding a container compared the event's ID with a `String` key's bytes elsewhere on the
//! heap, a cache miss of its own on most events once thousands of containers are tracked.
//! Looked up by [`IdRef`]: both hash and compare their bytes, with no UTF-8 check of the key.

use std::hash::{Hash, Hasher};

/// The longest ID held in place: an engine's container IDs are 64 hex digits.
const INLINE: usize = 64;

#[derive(Clone)]
pub(super) enum Id {
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    /// Longer ones (no engine makes them), on the heap.
    Heap(Box<str>),
}

impl Id {
    fn bytes(&self) -> &[u8] {
        match self {
            Id::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Id::Heap(s) => s.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Copied from a str whole: its bytes are valid UTF-8.
            Id::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Id::Heap(s) => s,
        }
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Id::Inline { len, bytes }
            }
            _ => Id::Heap(s.into()),
        }
    }
}

/// An ID to look a container up by.
pub(super) struct IdRef<'a>(pub &'a str);

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.bytes());
    }
}

impl Hash for IdRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

impl hashbrown::Equivalent<Id> for IdRef<'_> {
    fn equivalent(&self, key: &Id) -> bool {
        self.0.as_bytes() == key.bytes()
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Id {}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_found_by_its_str_whatever_its_length() {
        let mut map: hashbrown::HashMap<Id, usize, foldhash::fast::RandomState> =
            Default::default();
        let ids: Vec<String> = [0, 1, 12, 63, 64, 65, 300]
            .iter()
            .map(|n| "é".repeat(n / 2) + &"a".repeat(n % 2))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            map.insert(Id::from(id.as_str()), i);
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(map.get(&IdRef(id)), Some(&i), "{id}");
            assert_eq!(Id::from(id.as_str()).as_str(), id);
        }
        assert!(matches!(
            Id::from("a".repeat(64).as_str()),
            Id::Inline { .. }
        ));
        assert!(matches!(Id::from("a".repeat(65).as_str()), Id::Heap(_)));
        assert_eq!(map.get(&IdRef("b")), None);
    }
}
