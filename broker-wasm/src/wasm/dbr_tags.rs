//! `DbrTags` for JavaScript: the tag table of the PyDBR asynchronous calls (DB-23, DB-24),
//! [`crate::client::namespace::TagTable`], holding one JS object per outstanding call.

use wasm_bindgen::prelude::*;

use crate::client::namespace::TagTable;

/// A JS tag as the table's: integers as they are, anything else invalid.
fn tag_arg(tag: &JsValue) -> i64 {
    tag.as_f64()
        .filter(|t| t.fract() == 0.0 && t.abs() < 9.0e15)
        .map_or(-1, |t| t as i64)
}

/// The tags of outstanding `putA`/`readA`/`getA` calls: 0..1023, round-robin.
#[wasm_bindgen(js_name = DbrTags)]
#[derive(Debug, Default)]
pub struct DbrTags {
    table: TagTable<JsValue>,
}

#[wasm_bindgen(js_class = DbrTags)]
impl DbrTags {
    #[wasm_bindgen(constructor)]
    pub fn new() -> DbrTags {
        DbrTags::default()
    }

    /// Takes the next free tag for `slot`: the tag, or -1 (`DB_TAG_ERROR`) when every tag is
    /// in use.
    pub fn post(&mut self, slot: JsValue) -> f64 {
        self.table.post_with(|| slot) as f64
    }

    /// The slot of a tag in use; `undefined` for a free, out-of-range or non-integer tag
    /// (`DBR_ERR_TAGERROR`).
    pub fn get(&mut self, tag: &JsValue) -> JsValue {
        self.table
            .get_mut(tag_arg(tag))
            .map_or(JsValue::UNDEFINED, |s| s.clone())
    }

    /// Frees a tag and returns its slot; `undefined` if it was not in use.
    pub fn take(&mut self, tag: &JsValue) -> JsValue {
        self.table.take(tag_arg(tag)).unwrap_or(JsValue::UNDEFINED)
    }
}
