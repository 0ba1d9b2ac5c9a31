//! The two declarations a mechanism writes once: its state tables ([`tables!`]) and its messages
//! ([`messages!`]). Everything that fans out from them — undo, block writes, genesis rows, store
//! loading, the wire codec, names and the routine flag — is generated here, so adding a table or a
//! message is one line in its module and no line anywhere else.

/// Declares a module's state: a struct whose fields are [`crate::table::Table`]s and
/// [`crate::table::Item`]s, each with a table id unique within the module (the id is part of the
/// store key and of the app hash: never reuse or renumber one).
///
/// ```ignore
/// tables! {
///     /// The bank's state.
///     pub struct Bank {
///         /// Accounts by address.
///         accounts: Table<Address, Account> = 1,
///     }
/// }
/// ```
macro_rules! tables {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field_vis:vis $field:ident : $ty:ty = $id:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $ty, )*
        }

        impl $crate::table::Tables for $name {
            fn visit(&self, visit: &mut dyn FnMut(u8, &'static str, &dyn $crate::table::TableRows)) {
                $( visit($id, stringify!($field), &self.$field); )*
                let _ = visit;
            }

            fn visit_mut(
                &mut self,
                visit: &mut dyn FnMut(u8, &'static str, &mut dyn $crate::table::TableRows),
            ) {
                $( visit($id, stringify!($field), &mut self.$field); )*
                let _ = visit;
            }
        }
    };
}

/// Declares a module's messages: an enum whose variants carry a wire tag (unique within the
/// module, never reused), the stable snake_case name used in JSON and events, and who may sign it:
/// `account` (the account's own key only) or `routine` (also the host's operational key).
///
/// ```ignore
/// messages! {
///     /// Bank messages.
///     pub enum BankMsg {
///         /// Move funds.
///         0 => Send("bank_send", account) {
///             /// Recipient.
///             to: Address,
///         },
///     }
/// }
/// ```
macro_rules! messages {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $tag:literal => $variant:ident ($msg_name:literal, $signer:ident)
                $({ $( $(#[$field_meta:meta])* $field:ident : $ty:ty ),* $(,)? })?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type")]
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $msg_name)]
                $variant $({ $( $(#[$field_meta])* $field: $ty ),* })?,
            )*
        }

        impl $crate::module::Message for $name {
            fn name(&self) -> &'static str {
                match *self {
                    $( Self::$variant { .. } => $msg_name, )*
                }
            }

            fn is_routine(&self) -> bool {
                match *self {
                    $( Self::$variant { .. } => messages!(@routine $signer), )*
                }
            }
        }

        impl gonka_primitives::codec::Encode for $name {
            #[allow(unused_variables)]
            fn encode(&self, out: &mut Vec<u8>) {
                match *self {
                    $(
                        Self::$variant $({ $( ref $field ),* })? => {
                            out.push($tag);
                            $( $( gonka_primitives::codec::Encode::encode($field, out); )* )?
                        }
                    )*
                }
            }
        }

        impl gonka_primitives::codec::Decode for $name {
            fn decode(
                reader: &mut gonka_primitives::codec::Reader<'_>,
            ) -> Result<Self, gonka_primitives::codec::DecodeError> {
                match <u8 as gonka_primitives::codec::Decode>::decode(reader)? {
                    $(
                        $tag => Ok(Self::$variant $({
                            $( $field: gonka_primitives::codec::Decode::decode(reader)?, )*
                        })?),
                    )*
                    tag => Err(gonka_primitives::codec::DecodeError::InvalidTag {
                        what: stringify!($name),
                        tag,
                    }),
                }
            }
        }
    };
    (@routine routine) => { true };
    (@routine account) => { false };
}
