//! Absent arguments, read as HBase reads them.
//!
//! The generated `HbaseSyncProcessor` treats every argument as required and
//! refuses a call that leaves one out ("missing required field"). HBase's
//! Thrift server (Java) takes an absent argument as `null`, and for two kinds
//! of argument `null` is ordinary: a column list (`null` = every column; the
//! usual Python HBase clients send `getRowWithColumns` and `scannerOpen`
//! without one) and the attributes map (`null` = none, and most clients
//! never send it). [`Lenient`] copies each call's arguments and adds exactly
//! those, empty, when they are absent, then hands the call to the generated
//! processor. Any other absent argument is still refused, as HBase refuses
//! it (with a NullPointerException there).

use std::io::Cursor;

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier,
    TOutputProtocol, TStructIdentifier, TType,
};
use thrift::server::TProcessor;

/// An argument HBase accepts as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Optional {
    /// `list<Text> columns`: absent means every column.
    Columns(i16),
    /// `map<Text, Text> attributes`: absent means none.
    Attributes(i16),
}

use Optional::{Attributes, Columns};

/// Per method (its wire name), the arguments HBase accepts as `null`, by
/// field id (from Hbase.thrift of the hbase-thrift crate).
fn optional_arguments(method: &str) -> &'static [Optional] {
    match method {
        "get" | "getRowTs" | "getRowsTs" | "mutateRow" | "deleteAll" | "deleteAllRowTs" | "mutateRowsTs" => {
            &[Attributes(4)]
        }
        "getVer" | "mutateRowTs" | "deleteAllTs" => &[Attributes(5)],
        "getVerTs" => &[Attributes(6)],
        "getRow" | "getRows" | "mutateRows" | "deleteAllRow" | "scannerOpenWithScan" => &[Attributes(3)],
        "getRowWithColumns" | "scannerOpen" | "scannerOpenWithPrefix" => &[Columns(3), Attributes(4)],
        "getRowWithColumnsTs" | "scannerOpenTs" => &[Columns(3), Attributes(5)],
        "getRowsWithColumns" => &[Columns(3), Attributes(4)],
        "getRowsWithColumnsTs" => &[Columns(3), Attributes(5)],
        "scannerOpenWithStop" => &[Columns(4), Attributes(5)],
        "scannerOpenWithStopTs" => &[Columns(4), Attributes(6)],
        "checkAndPut" => &[Attributes(7)],
        _ => &[],
    }
}

/// Wraps a processor so that the arguments HBase takes as `null` may be absent.
pub(crate) struct Lenient<P> {
    inner: P,
}

impl<P: TProcessor> Lenient<P> {
    pub(crate) fn new(inner: P) -> Lenient<P> {
        Lenient { inner }
    }
}

impl<P: TProcessor> TProcessor for Lenient<P> {
    fn process(&self, i_prot: &mut dyn TInputProtocol, o_prot: &mut dyn TOutputProtocol) -> thrift::Result<()> {
        let message = i_prot.read_message_begin()?;
        let optional = optional_arguments(&message.name);
        let mut call = Vec::new();
        {
            let mut out = TBinaryOutputProtocol::new(&mut call, true);
            out.write_message_begin(&message)?;
            i_prot.read_struct_begin()?;
            out.write_struct_begin(&TStructIdentifier::new("args"))?;
            let mut present = Vec::new();
            loop {
                let field = i_prot.read_field_begin()?;
                if field.field_type == TType::Stop {
                    break;
                }
                present.extend(field.id);
                out.write_field_begin(&field)?;
                copy(i_prot, &mut out, field.field_type, 0)?;
                out.write_field_end()?;
                i_prot.read_field_end()?;
            }
            i_prot.read_struct_end()?;
            i_prot.read_message_end()?;
            for argument in optional {
                match *argument {
                    Columns(id) if !present.contains(&id) => {
                        out.write_field_begin(&TFieldIdentifier::new("columns", TType::List, id))?;
                        out.write_list_begin(&TListIdentifier::new(TType::String, 0))?;
                        out.write_list_end()?;
                        out.write_field_end()?;
                    }
                    Attributes(id) if !present.contains(&id) => {
                        out.write_field_begin(&TFieldIdentifier::new("attributes", TType::Map, id))?;
                        out.write_map_begin(&TMapIdentifier::new(TType::String, TType::String, 0))?;
                        out.write_map_end()?;
                        out.write_field_end()?;
                    }
                    _ => {}
                }
            }
            out.write_field_stop()?;
            out.write_struct_end()?;
            out.write_message_end()?;
        }
        let mut replay = TBinaryInputProtocol::new(Cursor::new(call), true);
        self.inner.process(&mut replay, o_prot)
    }
}

/// Nesting deeper than any HBase call: a malformed message, not a call.
const MAX_DEPTH: usize = 32;

/// Copies one value of type `ty` from `i` to `o`.
fn copy(i: &mut dyn TInputProtocol, o: &mut dyn TOutputProtocol, ty: TType, depth: usize) -> thrift::Result<()> {
    if depth > MAX_DEPTH {
        return Err(thrift::Error::Protocol(thrift::ProtocolError::new(
            thrift::ProtocolErrorKind::DepthLimit,
            "arguments nested too deep",
        )));
    }
    match ty {
        TType::Bool => o.write_bool(i.read_bool()?),
        TType::I08 => o.write_i8(i.read_i8()?),
        TType::I16 => o.write_i16(i.read_i16()?),
        TType::I32 => o.write_i32(i.read_i32()?),
        TType::I64 => o.write_i64(i.read_i64()?),
        TType::Double => o.write_double(i.read_double()?),
        TType::String | TType::Utf7 | TType::Utf8 | TType::Utf16 => o.write_bytes(&i.read_bytes()?),
        TType::Struct => {
            i.read_struct_begin()?;
            o.write_struct_begin(&TStructIdentifier::new("struct"))?;
            loop {
                let field = i.read_field_begin()?;
                if field.field_type == TType::Stop {
                    break;
                }
                o.write_field_begin(&field)?;
                copy(i, o, field.field_type, depth + 1)?;
                o.write_field_end()?;
                i.read_field_end()?;
            }
            o.write_field_stop()?;
            i.read_struct_end()?;
            o.write_struct_end()
        }
        TType::List => {
            let list = i.read_list_begin()?;
            o.write_list_begin(&list)?;
            for _ in 0..list.size {
                copy(i, o, list.element_type, depth + 1)?;
            }
            i.read_list_end()?;
            o.write_list_end()
        }
        TType::Set => {
            let set = i.read_set_begin()?;
            o.write_set_begin(&set)?;
            for _ in 0..set.size {
                copy(i, o, set.element_type, depth + 1)?;
            }
            i.read_set_end()?;
            o.write_set_end()
        }
        TType::Map => {
            let map = i.read_map_begin()?;
            // An empty map may carry no key and value types on the wire.
            let key = map.key_type.unwrap_or(TType::String);
            let value = map.value_type.unwrap_or(TType::String);
            o.write_map_begin(&TMapIdentifier::new(key, value, map.size))?;
            for _ in 0..map.size {
                copy(i, o, key, depth + 1)?;
                copy(i, o, value, depth + 1)?;
            }
            i.read_map_end()?;
            o.write_map_end()
        }
        TType::Stop | TType::Void => Err(thrift::Error::Protocol(thrift::ProtocolError::new(
            thrift::ProtocolErrorKind::InvalidData,
            format!("unexpected value type {ty:?}"),
        ))),
    }
}
