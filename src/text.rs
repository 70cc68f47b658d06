//! The trait impls every validated-string newtype of the crate shares (`KeyId`, `Prefix`,
//! `KeyHint`, `Scope`, `PhcHash`), written once.

/// For a tuple struct over `Box<str>`: `as_str`, `AsRef<str>`, `Borrow<str>`, `Display`
/// and `Serialize` as a plain string; with `parse = F, error = E`, also `FromStr`,
/// `TryFrom<&str>` and a `Deserialize` that validates through `F`, so no invalid value can
/// be read back from storage. `Debug` is left to each type (some must hide their text).
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
    ($name:ident, parse = $parse:path, error = $error:ty) => {
        text_newtype!($name);

        impl ::std::str::FromStr for $name {
            type Err = $error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $parse(text)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $error;
            fn try_from(text: &str) -> Result<Self, Self::Error> {
                $parse(text)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(
                    deserializer,
                )?;
                $parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// `Debug` as `Name("text")`, for newtypes whose text is not secret.
macro_rules! quoted_debug {
    ($name:ident) => {
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), &*self.0)
            }
        }
    };
}
