//! Request keys: a 128-bit hash of the canonical form of a request.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use gm_core::ChatRequest;
use serde::ser::{self, Serialize};

/// Bumped whenever the canonical encoding changes, so keys written by an older version never match.
const KEY_DOMAIN: &[u8] = b"gm-cache/request-key/v2";

/// Fields of a chat request that do not change the answer, only how it is delivered.
const DELIVERY_FIELDS: [&str; 2] = ["stream", "stream_options"];

/// The identity of a request for caching: a 128-bit hash of everything that changes the answer.
///
/// Two requests get the same key when they would get the same answer from the same endpoint. For chat,
/// [`RequestKey::for_chat`] covers the provider, the base URL, the model (as sent, case kept), every message,
/// every generation parameter, the response format, the tools, fields kept in `extra`, and a sample index
/// that tells repeated samples of one prompt apart. It ignores `stream` and `stream_options`, so a cached
/// answer can be replayed as a stream.
///
/// The key is stable across JSON field order (object keys are sorted), number formatting (`1`, `1.0` and
/// `1e0` are the same number) and `null` versus an absent field, across processes and across machines, so
/// it can name entries in a file or in Redis.
///
/// ```
/// use gm_cache::RequestKey;
/// use gm_core::{ChatMessage, ChatRequest};
///
/// let req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("hi")]).with_temperature(0.0);
/// let a = RequestKey::for_chat("github", "https://models.github.ai", &req, 0);
/// let b = RequestKey::for_chat("github", "https://models.github.ai", &req.clone().with_temperature(1.0), 0);
/// let c = RequestKey::for_chat("github", "https://models.github.ai", &req, 1);
/// assert_ne!(a, b);
/// assert_ne!(a, c);
/// assert_eq!(a.to_string().len(), 32);
/// assert_eq!(a.to_string().parse::<RequestKey>().unwrap(), a);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey(u128);

impl RequestKey {
    /// The key of a chat completions request sent to `provider` at `base_url`, for sample number `sample`
    /// (use 0 unless the same prompt is sampled several times on purpose).
    ///
    /// The provider name is compared case-insensitively and trailing slashes of the base URL are ignored.
    pub fn for_chat(provider: &str, base_url: &str, req: &ChatRequest, sample: u32) -> RequestKey {
        let model = wire_model(&req.model);
        Self::compute(
            b"chat",
            provider,
            base_url,
            model,
            sample,
            req,
            &["model", DELIVERY_FIELDS[0], DELIVERY_FIELDS[1]],
        )
    }

    /// The key of any other request body (embeddings, a catalog query …) of kind `kind`, for example
    /// `"embeddings"`. Every field of `body` counts except the top-level fields named in `ignore`.
    ///
    /// Returns `None` when `body` cannot be serialized (a map with non-string keys, a failing `Serialize`).
    pub fn for_body<T: Serialize + ?Sized>(
        kind: &str,
        provider: &str,
        base_url: &str,
        body: &T,
        sample: u32,
        ignore: &[&str],
    ) -> Option<RequestKey> {
        let mut failed = false;
        let key = with_buffers(|bufs| {
            let r = encode_request(bufs, kind.as_bytes(), provider, base_url, "", sample, body, ignore);
            failed = r.is_err();
            xxh3_128(&bufs.out)
        });
        (!failed).then_some(RequestKey(key))
    }

    fn compute<T: Serialize + ?Sized>(
        kind: &[u8],
        provider: &str,
        base_url: &str,
        model: &str,
        sample: u32,
        body: &T,
        ignore: &[&str],
    ) -> RequestKey {
        RequestKey(with_buffers(|bufs| {
            // Serializing gm-core's request types cannot fail: they hold only strings, numbers, sequences
            // and maps with string keys. Should a future field fail, the partial encoding still hashes every
            // field before it plus a marker, so distinct requests stay distinct in practice.
            if encode_request(bufs, kind, provider, base_url, model, sample, body, ignore).is_err() {
                bufs.out.push(tag::ERROR);
            }
            xxh3_128(&bufs.out)
        }))
    }

    /// The key with these 128 bits (for keys read back from a store).
    pub const fn from_u128(bits: u128) -> RequestKey {
        RequestKey(bits)
    }

    /// The 128 bits of the key.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The key as 16 big-endian bytes, the form stored in SQLite.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The key from 16 big-endian bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> RequestKey {
        RequestKey(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for RequestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestKey({:032x})", self.0)
    }
}

/// A string that is not 32 hexadecimal digits, given where a [`RequestKey`] was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a cache key; a key is 32 hexadecimal digits")]
pub struct InvalidKey(pub String);

impl FromStr for RequestKey {
    type Err = InvalidKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidKey(s.to_string()));
        }
        u128::from_str_radix(s, 16).map(RequestKey).map_err(|_| InvalidKey(s.to_string()))
    }
}

/// The model id as the request sends it, trimmed. Its case is kept: a server may treat `Org/Model-A` and
/// `org/model-a` as two models, so they are two keys. (A client that normalises ids for its provider, as
/// gm-http does for GitHub's case-insensitive catalog, hands the normalised id here.)
fn wire_model(model: &str) -> &str {
    model.trim()
}

fn xxh3_128(bytes: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(bytes)
}

/// Reusable scratch space, so computing a key allocates nothing once a thread has warmed up.
#[derive(Default)]
struct Buffers {
    /// The canonical encoding.
    out: Vec<u8>,
    /// Entries of the maps being encoded, innermost last.
    entries: Vec<MapEntry>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Large buffers are dropped after use rather than kept for the life of the thread.
const KEEP_CAPACITY: usize = 1 << 20;

fn with_buffers<R>(f: impl FnOnce(&mut Buffers) -> R) -> R {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            bufs.out.clear();
            bufs.entries.clear();
            let r = f(&mut bufs);
            if bufs.out.capacity() > KEEP_CAPACITY {
                *bufs = Buffers::default();
            }
            r
        }
        // Only reachable if a `Serialize` implementation computes a key while being keyed itself.
        Err(_) => f(&mut Buffers::default()),
    })
}

#[allow(clippy::too_many_arguments)]
fn encode_request<T: Serialize + ?Sized>(
    bufs: &mut Buffers,
    kind: &[u8],
    provider: &str,
    base_url: &str,
    model: &str,
    sample: u32,
    body: &T,
    ignore: &[&str],
) -> Result<(), Unsupported> {
    let out = &mut bufs.out;
    write_raw(out, KEY_DOMAIN);
    write_raw(out, kind);
    let provider = provider.trim();
    out.push(tag::STR);
    out.extend_from_slice(&(provider.len() as u64).to_le_bytes());
    out.extend(provider.bytes().map(|b| b.to_ascii_lowercase()));
    write_raw(out, base_url.trim().trim_end_matches('/').as_bytes());
    write_raw(out, model.as_bytes());
    out.extend_from_slice(&sample.to_le_bytes());
    body.serialize(Canon { bufs, ignore })
}

fn write_raw(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(tag::STR);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Type tags of the canonical encoding. Every value starts with one and is self-delimiting, so the
/// concatenation of encodings is unambiguous.
mod tag {
    pub const NULL: u8 = 0;
    pub const FALSE: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const INT: u8 = 3;
    pub const BIG_UINT: u8 = 4;
    pub const FLOAT: u8 = 5;
    pub const STR: u8 = 6;
    pub const BYTES: u8 = 7;
    pub const SEQ: u8 = 8;
    pub const SEQ_END: u8 = 9;
    /// Followed by the 16-byte digest of the map's entries in key order.
    pub const MAP: u8 = 10;
    pub const ERROR: u8 = 0xff;
}

/// The one way the canonical serializer fails: a value JSON cannot represent.
#[derive(Debug)]
struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value cannot be part of a cache key")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Unsupported
    }
}

fn write_int(out: &mut Vec<u8>, v: i128) {
    out.push(tag::INT);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Numbers are compared by value: an integral float is encoded as the integer it equals, so `1`, `1.0`
/// and `1e0` in JSON give the same key, and `-0.0` equals `0`.
fn write_float(out: &mut Vec<u8>, v: f64) {
    // 2^127: below it every integral f64 converts to i128 exactly.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if v.is_finite() && v.fract() == 0.0 && v.abs() < LIMIT {
        write_int(out, v as i128);
    } else if v.is_nan() {
        out.push(tag::FLOAT);
        out.extend_from_slice(&f64::NAN.to_bits().to_le_bytes());
    } else {
        out.push(tag::FLOAT);
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    write_raw(out, s.as_bytes());
}

/// Offsets into `Buffers::out` of one map entry: the key is `key_start..key_end`, the value `key_end..end`.
#[derive(Clone, Copy)]
struct MapEntry {
    key_start: usize,
    key_end: usize,
    end: usize,
}

/// A serde serializer that writes the canonical encoding: JSON's data model (as serde_json maps Rust
/// values) with object keys sorted, `null` members dropped and numbers compared by value.
struct Canon<'a> {
    bufs: &'a mut Buffers,
    /// Top-level fields to leave out; empty below the top level.
    ignore: &'a [&'a str],
}

impl<'a> Canon<'a> {
    fn begin_map(self) -> MapCanon<'a> {
        self.bufs.out.push(tag::MAP);
        let base = self.bufs.entries.len();
        let body_start = self.bufs.out.len();
        MapCanon { bufs: self.bufs, ignore: self.ignore, base, body_start, pending: None }
    }
}

impl<'a> ser::Serializer for Canon<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = SeqCanon<'a>;
    type SerializeTuple = SeqCanon<'a>;
    type SerializeTupleStruct = SeqCanon<'a>;
    type SerializeTupleVariant = VariantCanon<SeqCanon<'a>>;
    type SerializeMap = MapCanon<'a>;
    type SerializeStruct = MapCanon<'a>;
    type SerializeStructVariant = VariantCanon<MapCanon<'a>>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.bufs.out.push(if v { tag::TRUE } else { tag::FALSE });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        write_int(&mut self.bufs.out, i128::from(v));
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        write_int(&mut self.bufs.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        write_int(&mut self.bufs.out, i128::from(v));
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        match i128::try_from(v) {
            Ok(v) => write_int(&mut self.bufs.out, v),
            Err(_) => {
                self.bufs.out.push(tag::BIG_UINT);
                self.bufs.out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        write_float(&mut self.bufs.out, f64::from(v));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        write_float(&mut self.bufs.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        write_str(&mut self.bufs.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(&mut self.bufs.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        let out = &mut self.bufs.out;
        out.push(tag::BYTES);
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.bufs.out.push(tag::NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        // As serde_json: `{"Variant": value}`.
        let mut map = Canon { bufs: self.bufs, ignore: &[] }.begin_map();
        ser::SerializeMap::serialize_entry(&mut map, variant, value)?;
        ser::SerializeMap::end(map)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<SeqCanon<'a>, Unsupported> {
        self.bufs.out.push(tag::SEQ);
        Ok(SeqCanon { bufs: self.bufs })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqCanon<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SeqCanon<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantCanon<SeqCanon<'a>>, Unsupported> {
        let (outer, key_start, key_end) = self.begin_variant(variant);
        let inner = Canon { bufs: outer.bufs, ignore: &[] }.serialize_seq(Some(len))?;
        Ok(VariantCanon { inner, outer_base: outer.base, outer_body_start: outer.body_start, key_start, key_end })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapCanon<'a>, Unsupported> {
        Ok(self.begin_map())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<MapCanon<'a>, Unsupported> {
        Ok(self.begin_map())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<VariantCanon<MapCanon<'a>>, Unsupported> {
        let (outer, key_start, key_end) = self.begin_variant(variant);
        let inner = Canon { bufs: outer.bufs, ignore: &[] }.begin_map();
        Ok(VariantCanon { inner, outer_base: outer.base, outer_body_start: outer.body_start, key_start, key_end })
    }
}

struct OuterBegun<'a> {
    bufs: &'a mut Buffers,
    base: usize,
    body_start: usize,
}

impl<'a> Canon<'a> {
    fn begin_variant(self, variant: &str) -> (OuterBegun<'a>, usize, usize) {
        let bufs = self.bufs;
        bufs.out.push(tag::MAP);
        let base = bufs.entries.len();
        let body_start = bufs.out.len();
        let key_start = bufs.out.len();
        write_str(&mut bufs.out, variant);
        let key_end = bufs.out.len();
        (OuterBegun { bufs, base, body_start }, key_start, key_end)
    }
}

struct SeqCanon<'a> {
    bufs: &'a mut Buffers,
}

impl SeqCanon<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(Canon { bufs: self.bufs, ignore: &[] })
    }
    fn finish(self) {
        self.bufs.out.push(tag::SEQ_END);
    }
}

impl ser::SerializeSeq for SeqCanon<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTuple for SeqCanon<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTupleStruct for SeqCanon<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish();
        Ok(())
    }
}

struct MapCanon<'a> {
    bufs: &'a mut Buffers,
    ignore: &'a [&'a str],
    /// Index in `bufs.entries` of this map's first entry.
    base: usize,
    /// Offset in `bufs.out` just after the map tag.
    body_start: usize,
    /// The key written last, waiting for its value; `None` between entries or when the key is ignored.
    pending: Option<(usize, usize)>,
}

/// Serializes a map key as JSON would: strings as they are, numbers and booleans as their text.
struct KeyCanon<'a> {
    out: &'a mut Vec<u8>,
}

macro_rules! key_via_display {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<(), Unsupported> {
            write_str(self.out, &v.to_string());
            Ok(())
        })*
    };
}

impl ser::Serializer for KeyCanon<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = ser::Impossible<(), Unsupported>;
    type SerializeTuple = ser::Impossible<(), Unsupported>;
    type SerializeTupleStruct = ser::Impossible<(), Unsupported>;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = ser::Impossible<(), Unsupported>;
    type SerializeStruct = ser::Impossible<(), Unsupported>;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    key_via_display!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128, serialize_char: char);

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

impl MapCanon<'_> {
    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        let key_start = self.bufs.out.len();
        key.serialize(KeyCanon { out: &mut self.bufs.out })?;
        let key_end = self.bufs.out.len();
        if !self.ignore.is_empty() {
            // The key was written as STR tag, 8-byte length, bytes.
            let text = &self.bufs.out[key_start + 9..key_end];
            if self.ignore.iter().any(|name| name.as_bytes() == text) {
                self.bufs.out.truncate(key_start);
                self.pending = None;
                return Ok(());
            }
        }
        self.pending = Some((key_start, key_end));
        Ok(())
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        let Some((key_start, key_end)) = self.pending.take() else {
            return Ok(()); // an ignored field
        };
        value.serialize(Canon { bufs: self.bufs, ignore: &[] })?;
        let end = self.bufs.out.len();
        if end == key_end + 1 && self.bufs.out[key_end] == tag::NULL {
            // `"field": null` means the same as leaving the field out.
            self.bufs.out.truncate(key_start);
        } else {
            self.bufs.entries.push(MapEntry { key_start, key_end, end });
        }
        Ok(())
    }

    fn finish(self) {
        finish_map(self.bufs, self.base, self.body_start);
    }
}

/// Closes the map whose body starts at `body_start`: replaces its entries with a 128-bit digest of them
/// taken in key order.
///
/// Digesting instead of reordering the bytes in place means no entry is ever copied, however large (the
/// messages of a request), and every byte is hashed once, by the innermost map that holds it.
fn finish_map(bufs: &mut Buffers, base: usize, body_start: usize) {
    let Buffers { out, entries } = bufs;
    let mine = &mut entries[base..];
    let sorted = mine.windows(2).all(|w| out[w[0].key_start..w[0].key_end] <= out[w[1].key_start..w[1].key_end]);
    let digest = if sorted {
        xxh3_128(&out[body_start..])
    } else {
        // A stable sort, so a key that appears twice keeps its order. Streaming the entries in this order
        // gives the same digest as hashing them laid out sorted.
        mine.sort_by(|a, b| out[a.key_start..a.key_end].cmp(&out[b.key_start..b.key_end]));
        let mut hasher = twox_hash::XxHash3_128::new();
        for e in mine.iter() {
            hasher.write(&out[e.key_start..e.end]);
        }
        hasher.finish_128()
    };
    entries.truncate(base);
    out.truncate(body_start);
    out.extend_from_slice(&digest.to_le_bytes());
}

impl ser::SerializeMap for MapCanon<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.value(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStruct for MapCanon<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Unsupported> {
        self.key(key)?;
        self.value(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.finish();
        Ok(())
    }
}

/// A tuple or struct variant, encoded as serde_json does: `{"Variant": [..]}` or `{"Variant": {..}}`.
struct VariantCanon<I> {
    inner: I,
    outer_base: usize,
    outer_body_start: usize,
    key_start: usize,
    key_end: usize,
}

impl<'a> VariantCanon<SeqCanon<'a>> {
    fn close(self) {
        let bufs = self.inner.bufs;
        bufs.out.push(tag::SEQ_END);
        close_variant(bufs, self.outer_base, self.outer_body_start, self.key_start, self.key_end);
    }
}

impl<'a> VariantCanon<MapCanon<'a>> {
    fn close(self) {
        let MapCanon { bufs, base, body_start, .. } = self.inner;
        finish_map(bufs, base, body_start);
        close_variant(bufs, self.outer_base, self.outer_body_start, self.key_start, self.key_end);
    }
}

fn close_variant(bufs: &mut Buffers, outer_base: usize, outer_body_start: usize, key_start: usize, key_end: usize) {
    let end = bufs.out.len();
    bufs.entries.push(MapEntry { key_start, key_end, end });
    finish_map(bufs, outer_base, outer_body_start);
}

impl ser::SerializeTupleVariant for VariantCanon<SeqCanon<'_>> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.inner.element(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeStructVariant for VariantCanon<MapCanon<'_>> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Unsupported> {
        self.inner.key(key)?;
        self.inner.value(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close();
        Ok(())
    }
}
