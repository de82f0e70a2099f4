//! Randomness at the edge: the runtime's `crypto.getRandomValues` (a CSPRNG), for
//! key texts, tenant secrets and the random part of ids.

use js_sys::{Function, Reflect, Uint8Array};
use wasm_bindgen::JsValue;

use crate::http::{ApiResult, Failure};

/// Fills `out` with cryptographically strong random bytes.
pub fn fill(out: &mut [u8]) -> ApiResult<()> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|_| Failure::internal("no crypto object in this runtime"))?;
    let get: Function = Reflect::get(&crypto, &JsValue::from_str("getRandomValues"))
        .map_err(|_| Failure::internal("no crypto.getRandomValues"))?
        .into();
    // getRandomValues fills at most 65,536 bytes per call.
    for chunk in out.chunks_mut(65_536) {
        let buf = Uint8Array::new_with_length(
            u32::try_from(chunk.len()).expect("chunks are at most 65,536 bytes"),
        );
        get.call1(&crypto, &buf)
            .map_err(|_| Failure::internal("crypto.getRandomValues failed"))?;
        buf.copy_to(chunk);
    }
    Ok(())
}

/// 80 random bits for a ULID.
pub fn ulid_bits() -> ApiResult<u128> {
    let mut bytes = [0u8; 16];
    fill(&mut bytes[6..])?;
    Ok(u128::from_be_bytes(bytes))
}
