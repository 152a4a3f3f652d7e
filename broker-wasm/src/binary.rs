//! The compact binary encoding: a small, non-self-describing serde format.
//!
//! Unsigned integers are LEB128 varints, signed ones zig-zag varints, `u8`/`i8` one raw byte,
//! floats 8 (or 4) little-endian bytes, strings/bytes/sequences/maps a varint length followed
//! by their contents, options a 0/1 byte, enum variants a varint index, structs and tuples
//! their fields in order.
//!
//! Decoding never allocates more than the input justifies: a length larger than the bytes
//! left is rejected before anything is reserved, and nesting is limited ([`MAX_DEPTH`]), so
//! hostile input can neither exhaust memory nor the stack. The format is used for whole
//! frames (see [`crate::protocol`]); inside a frame, running out of bytes is malformed input
//! ([`DecodeError::Truncated`]), never "need more".

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

use crate::error::{DecodeError, EncodeError};

/// Deepest nesting of sequences, maps, tuples, structs and enums the decoder accepts. A Broker
/// container costs two levels, so this allows about 60 levels of nested values, the same as
/// the JSON decoders (which stop at 128 JSON levels).
pub const MAX_DEPTH: usize = 128;

/// Appends `v` as a LEB128 varint.
#[inline]
pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint from the start of `input`: the value and the bytes it used.
/// Returns [`DecodeError::Incomplete`] if `input` ends inside the varint.
///
/// Only the shortest form is accepted (what [`write_varint`] writes): a value has exactly one
/// encoding, so a message's bytes are the same however it reached us. The gateway relies on
/// that when it forwards a client's publish by its own bytes, swapping only the first byte
/// (the variant index) for the server's tag; an overlong index such as `83 00` for 3 would
/// otherwise leave a stray byte behind and corrupt the frame subscribers receive.
#[inline]
pub fn read_varint(input: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate() {
        if i == 9 && byte > 1 {
            return Err(DecodeError::BadVarint);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of zero after others only pads the value: not the shortest form.
            if byte == 0 && i > 0 {
                return Err(DecodeError::BadVarint);
            }
            return Ok((value, i + 1));
        }
        if i == 9 {
            return Err(DecodeError::BadVarint);
        }
    }
    Err(DecodeError::Incomplete(1))
}

/// Appends a signed integer as a zig-zag varint (how the format writes `i16`..`i64`).
#[inline]
pub fn write_signed(out: &mut Vec<u8>, v: i64) {
    write_varint(out, zigzag(v));
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes `value` in the binary format, appending to `out`.
pub fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), EncodeError> {
    value.serialize(&mut Encoder { out })
}

/// Encodes `value` in the binary format.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    to_writer(&mut out, value)?;
    Ok(out)
}

/// Decodes exactly one value that must fill `input` completely.
pub fn from_slice<'de, T: de::Deserialize<'de>>(input: &'de [u8]) -> Result<T, DecodeError> {
    let mut d = Decoder::new(input);
    let v = T::deserialize(&mut d)?;
    d.finish()?;
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Encoder

/// The serde serializer of the binary format.
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Encoder { out }
    }
}

impl<'a> ser::Serializer for &mut Encoder<'a> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.out.push(v as u8);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        write_varint(self.out, zigzag(v));
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.out.push(v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        write_varint(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        write_varint(self.out, v.len() as u64);
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.out.push(1);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), EncodeError> {
        self.serialize_u32(index)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.serialize_u32(index)?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncodeError> {
        let len = len.ok_or_else(|| {
            EncodeError::Unrepresentable("sequences must have a known length".into())
        })?;
        write_varint(self.out, len as u64);
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        self.serialize_u32(index)?;
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, EncodeError> {
        self.serialize_seq(len)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        self.serialize_u32(index)?;
        Ok(self)
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl<'a> ser::$trait for &mut Encoder<'a> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: Serialize + ?Sized>(&mut self, $($key: &'static str,)? value: &T) -> Result<(), EncodeError> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        }
    };
}
compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, _key);
compound!(SerializeStructVariant, serialize_field, _key);

impl<'a> ser::SerializeMap for &mut Encoder<'a> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder

/// The serde deserializer of the binary format, over a complete input.
#[derive(Debug)]
pub struct Decoder<'de> {
    input: &'de [u8],
    pos: usize,
    depth: usize,
}

impl<'de> Decoder<'de> {
    pub fn new(input: &'de [u8]) -> Self {
        Decoder {
            input,
            pos: 0,
            depth: 0,
        }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads a sequence length (checked against the bytes left, like every length).
    pub fn read_length(&mut self) -> Result<usize, DecodeError> {
        self.length()
    }

    /// Counts one level of nesting for what follows, as the sequence around it would when
    /// decoded as a whole (how [`crate::protocol::for_each_binary`] decodes a frame's messages
    /// exactly as deep as [`crate::protocol::from_binary`] does).
    pub fn enter_sequence(&mut self) -> Result<(), DecodeError> {
        self.enter()
    }

    /// Fails unless the whole input was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.input.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        match read_varint(&self.input[self.pos..]) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(DecodeError::Incomplete(_)) => Err(DecodeError::Truncated),
            Err(e) => Err(e),
        }
    }

    /// A length prefix that must not exceed the bytes left: every element of every sequence we
    /// encode takes at least one byte, so a larger length can only be a lie.
    #[inline]
    fn length(&mut self) -> Result<usize, DecodeError> {
        let len = self.varint()?;
        let remaining = self.remaining();
        if len > remaining as u64 {
            return Err(DecodeError::BadLength { len, remaining });
        }
        Ok(len as usize)
    }

    fn bytes(&mut self) -> Result<&'de [u8], DecodeError> {
        let len = self.length()?;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'de str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::InvalidUtf8)
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep(MAX_DEPTH));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.enter()?;
        let r = f(self);
        self.leave();
        r
    }

    fn u64_in_range(&mut self, max: u64, what: &str) -> Result<u64, DecodeError> {
        let v = self.varint()?;
        if v > max {
            return Err(DecodeError::Invalid(format!(
                "{what} value {v} out of range"
            )));
        }
        Ok(v)
    }

    fn i64_in_range(&mut self, min: i64, max: i64, what: &str) -> Result<i64, DecodeError> {
        let v = unzigzag(self.varint()?);
        if v < min || v > max {
            return Err(DecodeError::Invalid(format!(
                "{what} value {v} out of range"
            )));
        }
        Ok(v)
    }
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = DecodeError;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::Invalid(
            "the binary format is not self-describing".into(),
        ))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        match self.byte()? {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            b => Err(DecodeError::Invalid(format!("invalid boolean byte {b}"))),
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_i8(self.byte()? as i8)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let x = self.i64_in_range(i16::MIN.into(), i16::MAX.into(), "i16")?;
        v.visit_i16(x as i16)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let x = self.i64_in_range(i32::MIN.into(), i32::MAX.into(), "i32")?;
        v.visit_i32(x as i32)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_i64(unzigzag(self.varint()?))
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_u8(self.byte()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let x = self.u64_in_range(u16::MAX.into(), "u16")?;
        v.visit_u16(x as u16)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let x = self.u64_in_range(u32::MAX.into(), "u32")?;
        v.visit_u32(x as u32)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_u64(self.varint()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let b = self.take(4)?;
        v.visit_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        v.visit_f64(f64::from_le_bytes(a))
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let x = self.u64_in_range(u32::MAX.into(), "char")?;
        let c = char::from_u32(x as u32)
            .ok_or_else(|| DecodeError::Invalid(format!("invalid char {x}")))?;
        v.visit_char(c)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(v)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_borrowed_bytes(self.bytes()?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        match self.byte()? {
            0 => v.visit_none(),
            1 => self.nested(|d| v.visit_some(d)),
            b => Err(DecodeError::Invalid(format!("invalid option byte {b}"))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        self.nested(|d| v.visit_newtype_struct(d))
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let len = self.length()?;
        self.nested(|d| v.visit_seq(Counted { d, left: len }))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, DecodeError> {
        self.nested(|d| v.visit_seq(Counted { d, left: len }))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, v)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        let len = self.length()?;
        self.nested(|d| v.visit_map(Counted { d, left: len }))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(fields.len(), v)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DecodeError> {
        self.nested(|d| v.visit_enum(d))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        // Variant identifiers are indices.
        let idx = self.u64_in_range(u32::MAX.into(), "variant index")?;
        v.visit_u32(idx as u32)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::Invalid(
            "the binary format cannot skip unknown fields".into(),
        ))
    }
}

/// Sequence and map access for a known number of elements.
struct Counted<'a, 'de> {
    d: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Counted<'_, 'de> {
    type Error = DecodeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        // Never more than the bytes left, so pre-allocation stays proportional to the input.
        Some(self.left.min(self.d.remaining()))
    }
}

impl<'de> de::MapAccess<'de> for Counted<'_, 'de> {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(&mut *self.d)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.d.remaining() / 2))
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = DecodeError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DecodeError> {
        let idx = self.u64_in_range(u32::MAX.into(), "variant index")?;
        let value =
            seed.deserialize((idx as u32).into_deserializer())
                .map_err(|_: de::value::Error| DecodeError::UnknownTag {
                    what: "variant",
                    tag: idx,
                })?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = DecodeError;
    fn unit_variant(self) -> Result<(), DecodeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(self, len, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(self, fields.len(), v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(read_varint(&out), Ok((v, out.len())));
            assert!(read_varint(&out[..out.len() - 1])
                .unwrap_err()
                .is_incomplete());
        }
        // 11 continuation bytes, and a 10th byte that overflows 64 bits.
        assert_eq!(read_varint(&[0xff; 11]), Err(DecodeError::BadVarint));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(read_varint(&over), Err(DecodeError::BadVarint));
    }

    #[test]
    fn overlong_varints_are_rejected() {
        // Found by the binary_frames fuzz target: `83 00` decoded as 3.
        assert_eq!(read_varint(&[0x83, 0x00]), Err(DecodeError::BadVarint));
        assert_eq!(read_varint(&[0x80, 0x00]), Err(DecodeError::BadVarint));
        assert_eq!(
            read_varint(&[0xff, 0x80, 0x00]),
            Err(DecodeError::BadVarint)
        );
        assert_eq!(read_varint(&[0x00]), Ok((0, 1)));
        assert_eq!(read_varint(&[0x80, 0x01]), Ok((128, 2)));
    }

    #[test]
    fn zigzag_round_trip() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -64, 64] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn absurd_length_is_an_error_not_an_allocation() {
        // A Vec<u64> claiming 2^60 elements in a 10-byte input.
        let mut input = Vec::new();
        write_varint(&mut input, 1 << 60);
        input.extend_from_slice(&[1, 2]);
        let err = from_slice::<Vec<u64>>(&input).unwrap_err();
        assert!(matches!(err, DecodeError::BadLength { len, .. } if len == 1 << 60));
        let err = from_slice::<String>(&input).unwrap_err();
        assert!(matches!(err, DecodeError::BadLength { .. }));
    }

    #[test]
    fn nesting_is_limited() {
        // 100k nested one-element sequences of sequences.
        let input = vec![1u8; 100_000];
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Nest(Vec<Nest>);
        assert_eq!(
            from_slice::<Nest>(&input).unwrap_err(),
            DecodeError::TooDeep(MAX_DEPTH)
        );
    }

    #[test]
    fn trailing_and_truncated() {
        assert_eq!(from_slice::<u8>(&[1, 2]), Err(DecodeError::Trailing(1)));
        assert_eq!(from_slice::<f64>(&[1, 2]), Err(DecodeError::Truncated));
        assert_eq!(
            from_slice::<String>(&[2, 0xff, 0xfe]),
            Err(DecodeError::InvalidUtf8)
        );
    }
}
