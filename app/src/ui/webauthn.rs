//! `navigator.credentials.create/get` for passkeys, driven by the JSON the server sends.
//!
//! The server speaks webauthn-rs' JSON (byte strings as base64url). The browser API wants
//! `ArrayBuffer`s for the challenge, the user id and credential ids, and answers with
//! `ArrayBuffer`s; this module converts both ways with `js_sys` alone (no web-sys bindings, no
//! WebAuthn types in the WASM), so the bundle stays small. Only the hydrated page calls these;
//! on the server they report "only in the browser".

/// Creates a credential with the server's `CreationChallengeResponse` (JSON); returns the
/// `RegisterPublicKeyCredential` JSON to send back.
pub async fn create(options_json: &str) -> Result<String, String> {
    imp::create(options_json).await
}

/// Asserts with the server's `RequestChallengeResponse` (JSON); returns the
/// `PublicKeyCredential` JSON to send back.
pub async fn get(options_json: &str) -> Result<String, String> {
    imp::get(options_json).await
}

/// Unpadded base64url (RFC 4648 §5), the encoding of WebAuthn byte strings in JSON. Written
/// out here rather than pulled in as a crate, to keep it out of the WASM bundle's size.
#[cfg_attr(not(any(feature = "hydrate", test)), allow(dead_code))]
mod b64url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }

    /// Also accepts standard base64 and padding; `None` for anything else.
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let digits = text.trim_end_matches('=').bytes().map(|c| match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'-' | b'+' => Some(62),
            b'_' | b'/' => Some(63),
            _ => None,
        });
        let (mut out, mut acc, mut bits) = (Vec::with_capacity(text.len() * 3 / 4), 0u32, 0u32);
        for d in digits {
            acc = (acc << 6) | u32::from(d?);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        // Leftover bits must be zero padding of the last byte (at most 4 of them).
        (bits < 6 && acc == 0).then_some(out)
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_and_matches_rfc_4648() {
            for (raw, enc) in [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")] {
                assert_eq!(encode(raw.as_bytes()), enc);
                assert_eq!(decode(enc).unwrap(), raw.as_bytes());
            }
            let all: Vec<u8> = (0..=255).collect();
            assert_eq!(decode(&encode(&all)).unwrap(), all);
            assert_eq!(encode(&[0xfb, 0xff]), "-_8");
            assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
            assert_eq!(decode("Zm9v!"), None);
            assert_eq!(decode("Zh"), None, "non-zero padding bits");
        }
    }
}

#[cfg(not(feature = "hydrate"))]
mod imp {
    pub async fn create(_: &str) -> Result<String, String> {
        Err("passkeys work only in the browser".into())
    }

    pub async fn get(_: &str) -> Result<String, String> {
        Err("passkeys work only in the browser".into())
    }
}

#[cfg(feature = "hydrate")]
mod imp {
    use super::b64url;
    use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array, JSON};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    /// A DOMException's name and message (`NotAllowedError: ...` when the user cancels).
    fn js_err(v: JsValue) -> String {
        let field = |k: &str| Reflect::get(&v, &JsValue::from_str(k)).ok().and_then(|x| x.as_string());
        match (field("name"), field("message")) {
            (Some(n), Some(m)) => format!("{n}: {m}"),
            _ => v.as_string().unwrap_or_else(|| "the browser refused the passkey operation".into()),
        }
    }

    fn prop(obj: &JsValue, key: &str) -> Result<JsValue, String> {
        Reflect::get(obj, &JsValue::from_str(key)).map_err(js_err)
    }

    fn set(obj: &JsValue, key: &str, value: &JsValue) -> Result<(), String> {
        Reflect::set(obj, &JsValue::from_str(key), value).map(|_| ()).map_err(js_err)
    }

    /// base64url text -> Uint8Array.
    fn bytes_of(v: &JsValue) -> Result<JsValue, String> {
        let text = v.as_string().ok_or("expected a base64url string")?;
        let raw = b64url::decode(&text).ok_or("invalid base64url from the server")?;
        Ok(Uint8Array::from(raw.as_slice()).into())
    }

    /// ArrayBuffer (or view) -> base64url text; `undefined`/`null` -> `null`.
    fn b64_of(v: &JsValue) -> JsValue {
        if v.is_undefined() || v.is_null() {
            return JsValue::NULL;
        }
        JsValue::from_str(&b64url::encode(&Uint8Array::new(v).to_vec()))
    }

    fn convert_ids(public_key: &JsValue, list: &str) -> Result<(), String> {
        let items = prop(public_key, list)?;
        if items.is_undefined() || items.is_null() {
            return Ok(());
        }
        for item in Array::from(&items).iter() {
            set(&item, "id", &bytes_of(&prop(&item, "id")?)?)?;
        }
        Ok(())
    }

    async fn call(method: &str, public_key: JsValue) -> Result<JsValue, String> {
        let window: JsValue = leptos::prelude::window().into();
        let container = prop(&prop(&window, "navigator")?, "credentials")?;
        if container.is_undefined() {
            return Err("this browser has no WebAuthn support".into());
        }
        let f: Function = prop(&container, method)?.dyn_into().map_err(|_| "navigator.credentials is incomplete".to_string())?;
        let arg = Object::new();
        set(&arg, "publicKey", &public_key)?;
        let promise: Promise = f.call1(&container, &arg).map_err(js_err)?.dyn_into().map_err(js_err)?;
        let cred = JsFuture::from(promise).await.map_err(js_err)?;
        if cred.is_null() || cred.is_undefined() {
            return Err("no credential was chosen".into());
        }
        Ok(cred)
    }

    /// The common part of both answers: id, rawId, type, clientExtensionResults.
    fn answer(cred: &JsValue) -> Result<(Object, JsValue), String> {
        let out = Object::new();
        set(&out, "id", &prop(cred, "id")?)?;
        set(&out, "rawId", &b64_of(&prop(cred, "rawId")?))?;
        set(&out, "type", &JsValue::from_str("public-key"))?;
        let ext = match Reflect::get(cred, &JsValue::from_str("getClientExtensionResults"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
        {
            Some(f) => f.call0(cred).unwrap_or_else(|_| Object::new().into()),
            None => Object::new().into(),
        };
        set(&out, "extensions", &ext)?;
        Ok((out, prop(cred, "response")?))
    }

    fn stringify(v: &JsValue) -> Result<String, String> {
        JSON::stringify(v).map_err(js_err)?.as_string().ok_or_else(|| "JSON.stringify failed".into())
    }

    pub async fn create(options_json: &str) -> Result<String, String> {
        let options = JSON::parse(options_json).map_err(js_err)?;
        let pk = prop(&options, "publicKey")?;
        set(&pk, "challenge", &bytes_of(&prop(&pk, "challenge")?)?)?;
        let user = prop(&pk, "user")?;
        set(&user, "id", &bytes_of(&prop(&user, "id")?)?)?;
        convert_ids(&pk, "excludeCredentials")?;
        let cred = call("create", pk).await?;
        let (out, resp) = answer(&cred)?;
        let response = Object::new();
        set(&response, "attestationObject", &b64_of(&prop(&resp, "attestationObject")?))?;
        set(&response, "clientDataJSON", &b64_of(&prop(&resp, "clientDataJSON")?))?;
        if let Some(f) = Reflect::get(&resp, &JsValue::from_str("getTransports")).ok().and_then(|f| f.dyn_into::<Function>().ok()) {
            if let Ok(t) = f.call0(&resp) {
                set(&response, "transports", &t)?;
            }
        }
        set(&out, "response", &response)?;
        stringify(&out)
    }

    pub async fn get(options_json: &str) -> Result<String, String> {
        let options = JSON::parse(options_json).map_err(js_err)?;
        let pk = prop(&options, "publicKey")?;
        set(&pk, "challenge", &bytes_of(&prop(&pk, "challenge")?)?)?;
        convert_ids(&pk, "allowCredentials")?;
        let cred = call("get", pk).await?;
        let (out, resp) = answer(&cred)?;
        let response = Object::new();
        for key in ["authenticatorData", "clientDataJSON", "signature", "userHandle"] {
            set(&response, key, &b64_of(&prop(&resp, key)?))?;
        }
        set(&out, "response", &response)?;
        stringify(&out)
    }
}
