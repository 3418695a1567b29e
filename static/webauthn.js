// Passkeys in the browser: the only script on the site (CSP script-src 'self').
// Buttons carry what they need in data- attributes:
//   data-webauthn="register" | "signin" | "second-factor"
//   data-options-url, data-verify-url, data-next
//   data-name-input (register only: id of a text input naming the passkey)
//   data-setup-url (register only: where to go when the server wants an email proof first)
// The server answers options as {"publicKey": ...} (WebAuthn JSON, base64url), and a
// verified ceremony as {"redirect": url}.
(function () {
  "use strict";

  function b64urlToBuffer(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function bufferToB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = b64urlToBuffer(json.challenge);
    o.user = Object.assign({}, json.user, { id: b64urlToBuffer(json.user.id) });
    o.excludeCredentials = (json.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: b64urlToBuffer(c.id) });
    });
    return o;
  }

  function requestOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = b64urlToBuffer(json.challenge);
    o.allowCredentials = (json.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: b64urlToBuffer(c.id) });
    });
    return o;
  }

  function credentialJSON(credential) {
    var r = credential.response;
    var response = { clientDataJSON: bufferToB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = bufferToB64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = bufferToB64url(r.authenticatorData);
      response.signature = bufferToB64url(r.signature);
      if (r.userHandle) { response.userHandle = bufferToB64url(r.userHandle); }
    }
    return {
      id: credential.id,
      rawId: bufferToB64url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error_description || "That did not work. Try again.");
          error.code = data.error;
          throw error;
        }
        return data;
      });
    });
  }

  function showError(button, message) {
    var box = document.getElementById(button.getAttribute("data-error-box") || "webauthn-error");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  function run(button) {
    var kind = button.getAttribute("data-webauthn");
    // The page's CSRF token (Flask-WTF reads it from the X-CSRFToken header).
    var field = document.querySelector("input[name=csrf_token]");
    var csrf = field ? field.value : "";
    var next = button.getAttribute("data-next") || "";
    button.disabled = true;
    post(button.getAttribute("data-options-url"), csrf).then(function (data) {
      if (kind === "register") {
        return navigator.credentials.create({ publicKey: creationOptions(data.publicKey) });
      }
      return navigator.credentials.get({ publicKey: requestOptions(data.publicKey) });
    }).then(function (credential) {
      var body = { credential: credentialJSON(credential), next: next };
      var nameInput = document.getElementById(button.getAttribute("data-name-input") || "");
      if (nameInput) { body.name = nameInput.value; }
      return post(button.getAttribute("data-verify-url"), csrf, body);
    }).then(function (data) {
      window.location.assign(data.redirect || "/");
    }).catch(function (error) {
      button.disabled = false;
      if (error && error.code === "email_proof_required" && button.getAttribute("data-setup-url")) {
        window.location.assign(button.getAttribute("data-setup-url"));
        return;
      }
      if (error && error.name === "NotAllowedError") {
        showError(button, "The passkey request was cancelled or timed out.");
        return;
      }
      showError(button, (error && error.message) || "That did not work. Try again.");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var buttons = document.querySelectorAll("[data-webauthn]");
    for (var i = 0; i < buttons.length; i++) {
      var button = buttons[i];
      if (!window.PublicKeyCredential) {
        button.disabled = true;
        showError(button, "This browser does not support passkeys.");
        continue;
      }
      button.addEventListener("click", function (event) {
        event.preventDefault();
        run(event.currentTarget);
      });
    }
  });
})();
