/*
 * Outreach capture widget: PLACEHOLDER. The widget's author replaces this file.
 *
 * Served as GET /f/{form_id}/widget.js (text/javascript, public, cached 5 minutes, ETag).
 * The server replaces the marker below with this form's public configuration, a JSON object:
 *   {"form_id": "fm_...", "token_url": "https://.../f/fm_.../token",
 *    "capture_url": "https://.../capture/fm_..."}
 * Nothing secret is ever injected. The script then:
 *   1. GET token_url (CORS; the page's origin must be one of the form's allowed origins) ->
 *      {"token", "issued_at", "expires_at", "min_fill_seconds", "form": {kind, triggers, consent,
 *       look, honeypot_field, wheel: {segments: [{id, label}]} | null, ...}}
 *   2. shows the form per `form.triggers`; keeps a field named `form.honeypot_field` empty and
 *      hidden from people;
 *   3. POST capture_url with JSON {"email", "consent": true, "token", "name"?, "locale"?}
 *      (or the same fields form-encoded) no sooner than `min_fill_seconds` after the token;
 *   4. shows the answer: {"status": "pending_confirmation" | "subscribed", "double_opt_in",
 *      "messenger_url" | null, "spin": {segment_id, label, status, code} | null}; errors are
 *      application/problem+json with `errors: [{field, message, code}]` (422), 429 with
 *      Retry-After, 400 `form-token-refused` (fetch a new token), 409 `form-token-replayed`.
 */
(function (config) {
  "use strict";
  if (!config) {
    return;
  }
  window.OutreachCapture = window.OutreachCapture || { forms: [] };
  window.OutreachCapture.forms.push(config);
})(/*__OUTREACH_CONFIG__*/null);
