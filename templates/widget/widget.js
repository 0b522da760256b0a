/*
 * Outreach capture widget (DESIGN section 10): one self-contained script, no framework, embedded
 * with one tag:
 *
 *     <script src="https://outreach.example/f/fm_.../widget.js" async></script>
 *
 * Served as GET /f/{form_id}/widget.js (text/javascript, public, cached 5 minutes, ETag). The
 * server replaces the null argument at the very end of this file with the form's public
 * configuration, a JSON object; nothing secret is ever injected:
 *   {"form_id": "fm_...", "token_url": "https://.../f/fm_.../token",
 *    "capture_url": "https://.../capture/fm_..."}
 *
 * What the script does:
 *   1. GET token_url (CORS; the page's origin must be one of the form's allowed origins) ->
 *      {"token", "issued_at", "expires_at", "min_fill_seconds", "form": {kind, triggers, consent,
 *       look, honeypot_field, wheel: {segments: [{id, label}]} | null, ...}}. Skipped when this
 *      browser already submitted the form, or saw it as often as `triggers.frequency` allows
 *      (both kept in localStorage), so a capped visitor costs the server nothing.
 *   2. Shows a popup or lucky-wheel form (`kind`) when the first of its triggers fires (delay,
 *      scroll depth, exit intent; none set means at once), or an embedded form inline, in the
 *      element `<div data-outreach-form="fm_...">` if the page has one, else after this script.
 *      Styles live in a shadow root, so neither the page nor the widget restyles the other; the
 *      look (texts, colour, position, image) comes from `form.look`, Vietnamese defaults
 *      otherwise. Text is set as text, never as HTML.
 *   3. POSTs capture_url form-encoded (a CORS "simple request": no preflight round trip)
 *      {email, consent, token, <honeypot field, left empty>, locale?} no sooner than
 *      `min_fill_seconds` after the token; a refused or used token is replaced once.
 *   4. Shows the answer: {"status": "pending_confirmation" | "subscribed", "double_opt_in",
 *      "messenger_url" | null, "spin": {segment_id, label, status, code} | null}: the wheel turns
 *      to the segment the server drew, then the message, the prize and "Continue on Messenger".
 *
 * The dialog is keyboard accessible: labelled fields, focus moves in on open, Tab and Shift+Tab
 * cycle inside it, Escape closes it and focus returns where it was.
 *
 * The host element <outreach-capture data-form="fm_..."> carries `data-state`: loading, waiting
 * (triggers armed), open, closed, capped (frequency reached), done (this browser submitted it
 * before), unavailable (no token: origin not allowed, form gone or network down; nothing shown).
 */
(function (config) {
  "use strict";
  if (!config || typeof window === "undefined" || typeof fetch !== "function") {
    return;
  }
  const FORM = String(config.form_id || "");
  const doc = document;
  if (!/^[A-Za-z0-9_-]+$/.test(FORM) || !doc.documentElement.attachShadow) {
    return;
  }
  const TAG = "outreach-capture";
  if (doc.querySelector(TAG + '[data-form="' + FORM + '"]')) {
    return; // the same form's script included twice
  }
  const script = doc.currentScript;
  const STORE = "outreach-capture:" + FORM;
  // A first check only; the server decides (it answers 422 for what this lets through).
  const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
  const LOCALE = /^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$/;
  const COLOUR = /^#[0-9A-Fa-f]{6}$/;
  const POSITIONS = ["center", "bottom_right", "bottom_left", "top"];
  const SPIN_MS = 3500;
  const T = {
    title: "Nhận ưu đãi qua email",
    body: "Để lại email để nhận ưu đãi và tin mới nhất từ chúng tôi.",
    wheelTitle: "Vòng quay may mắn",
    wheelBody: "Nhập email để quay và nhận quà.",
    wheelLabel: "Vòng quay may mắn với các ô: ",
    email: "Email của bạn",
    placeholder: "ten@example.com",
    submit: "Đăng ký",
    spin: "Quay ngay",
    sending: "Đang gửi…",
    close: "Đóng",
    consent: "Tôi đồng ý nhận email từ cửa hàng.",
    emailEmpty: "Vui lòng nhập email của bạn.",
    emailInvalid: "Địa chỉ email chưa đúng. Vui lòng kiểm tra lại.",
    consentNeeded: "Vui lòng đánh dấu đồng ý để tiếp tục.",
    invalid: "Thông tin chưa hợp lệ. Vui lòng kiểm tra lại.",
    tooMany: "Bạn đã gửi quá nhiều lần. Vui lòng thử lại sau ít phút.",
    network: "Không kết nối được. Vui lòng thử lại.",
    failed: "Chưa gửi được. Vui lòng thử lại.",
    thanks: "Cảm ơn bạn!",
    checkEmail:
      "Chúng tôi vừa gửi một email xác nhận. Vui lòng mở email và bấm nút xác nhận để hoàn tất đăng ký.",
    subscribed: "Bạn đã đăng ký thành công.",
    result: "Kết quả của bạn: ",
    code: "Mã của bạn: ",
    keep: "Xác nhận email để nhận quà của bạn.",
    outOfStock: "Rất tiếc, quà đã hết.",
    messenger: "Tiếp tục trên Messenger",
  };

  const host = doc.createElement(TAG);
  host.setAttribute("data-form", FORM);
  // `all: initial` keeps the page's rules for this element (and what it would inherit) away.
  host.style.cssText = "all: initial !important; display: block !important;";
  const root = host.attachShadow({ mode: "open" });
  const state = (name) => host.setAttribute("data-state", name);
  state("loading");

  // -- storage: how often this browser saw the form, and whether it submitted it ----------------

  function readStore() {
    try {
      const value = JSON.parse(window.localStorage.getItem(STORE) || "null");
      return value && typeof value === "object" ? value : {};
    } catch (_) {
      return {}; // storage disabled (private mode, sandboxed frame): behave as a first visit
    }
  }

  function writeStore(value) {
    try {
      window.localStorage.setItem(STORE, JSON.stringify(value));
    } catch (_) {
      // nothing to do: the form may show again, which is the safe side
    }
  }

  function recentShows(record, now) {
    const f = record.frequency;
    const per = f && f.per_seconds > 0 ? f.per_seconds * 1000 : 0;
    return (record.shown || []).filter((t) => typeof t === "number" && t > now - per);
  }

  function capped(record, now) {
    if (record.done) {
      return "done";
    }
    const f = record.frequency;
    return f && f.times > 0 && recentShows(record, now).length >= f.times ? "capped" : null;
  }

  // -- the server -----------------------------------------------------------------------------

  let session = null; // {token, at, lifetime, minFill, form}

  async function fetchToken() {
    const response = await fetch(config.token_url, {
      mode: "cors",
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok) {
      throw new Error("form token: HTTP " + response.status);
    }
    const body = await response.json();
    const lifetime = Date.parse(body.expires_at) - Date.parse(body.issued_at);
    session = {
      token: String(body.token),
      at: Date.now(),
      lifetime: lifetime > 0 ? lifetime : 3600000,
      minFill: Math.max(0, Number(body.min_fill_seconds) || 0) * 1000,
      form: body.form || {},
    };
    return session;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function problem(message, field) {
    const error = new Error(message);
    error.field = field || null;
    return error;
  }

  async function post(email, hp, retried) {
    if (!session || Date.now() - session.at > session.lifetime - 60000) {
      try {
        await fetchToken();
      } catch (trouble) {
        throw problem(/HTTP 429$/.test(trouble.message) ? T.tooMany : T.network);
      }
    }
    const early = session.at + session.minFill - Date.now();
    if (early > 0) {
      await sleep(early); // people are slower than this; bots that are not get refused
    }
    const body = new URLSearchParams();
    body.set("email", email);
    body.set("consent", "true");
    body.set("token", session.token);
    body.set(hp.name, hp.value);
    const lang = doc.documentElement.lang;
    if (lang && LOCALE.test(lang)) {
      body.set("locale", lang);
    }
    let response;
    try {
      response = await fetch(config.capture_url, {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        body: body,
      });
    } catch (_) {
      throw problem(T.network);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (response.ok) {
      session = null; // used: a second submission needs a new token
      return data || {};
    }
    const type = (data && data.type) || "";
    const tokenTrouble =
      (response.status === 400 && /form-token-refused$/.test(type)) || response.status === 409;
    if (tokenTrouble && !retried) {
      if (data && data.reason === "token_too_fresh") {
        await sleep(Math.min(10, Number(data.retry_after_seconds) || 1) * 1000);
      } else {
        session = null;
      }
      return post(email, hp, true);
    }
    if (response.status === 422) {
      const onEmail = ((data && data.errors) || []).some((e) => /email/.test(String(e.field)));
      throw problem(onEmail ? T.emailInvalid : T.invalid, onEmail ? "email" : null);
    }
    throw problem(response.status === 429 ? T.tooMany : T.failed);
  }

  // -- the look -------------------------------------------------------------------------------

  function rgb(hex) {
    return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  }

  function luminance(hex) {
    const [r, g, b] = rgb(hex).map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }

  function contrast(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }

  // Text on a coloured surface: white or near-black, whichever reads better.
  const onColour = (hex) => (contrast(hex, "#ffffff") >= contrast(hex, "#111111") ? "#ffffff" : "#111111");

  function mix(hex, other, share) {
    const a = rgb(hex);
    const b = rgb(other);
    return (
      "#" +
      a.map((v, i) => Math.round(v * (1 - share) + b[i] * share).toString(16).padStart(2, "0")).join("")
    );
  }

  function css(primary) {
    const on = onColour(primary);
    const ring = contrast(primary, "#ffffff") >= 3 ? primary : "#1c1e21";
    return `
:host{all:initial}
*{box-sizing:border-box}
.backdrop{position:fixed;inset:0;background:rgba(0,0,0,.45);z-index:2147483646}
.dialog{position:fixed;z-index:2147483647;width:min(400px,calc(100vw - 24px));max-height:calc(100vh - 24px);overflow:auto;padding:24px 20px 20px;border-radius:12px;background:#fff;color:#1c1e21;box-shadow:0 12px 40px rgba(0,0,0,.3);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;text-align:left;letter-spacing:normal;text-transform:none}
.center{top:50%;left:50%;transform:translate(-50%,-50%)}
.bottom_right{right:12px;bottom:12px}
.bottom_left{left:12px;bottom:12px}
.top{top:12px;left:50%;transform:translateX(-50%)}
.inline{position:relative;z-index:auto;width:auto;max-width:480px;max-height:none;box-shadow:none;border:1px solid #dadde1}
h2{margin:0 36px 8px 0;font-size:20px;line-height:1.3;font-weight:700;color:#1c1e21}
.inline h2{margin-right:0}
h2:focus{outline:none}
p{margin:0 0 12px;white-space:pre-line}
.hero{display:block;max-width:100%;height:auto;margin:0 0 12px;border-radius:8px}
label{display:block;margin:0 0 4px;font-weight:600;color:#1c1e21}
.field{display:block;width:100%;margin:0 0 12px;padding:10px 12px;border:1px solid #8a8d91;border-radius:8px;background:#fff;color:#1c1e21;font:inherit}
.field[aria-invalid=true]{border-color:#b3261e}
.consent{display:flex;gap:8px;align-items:flex-start}
.consent input{flex:none;width:18px;height:18px;margin:2px 0 0;accent-color:${primary}}
.consent label{font-weight:400;font-size:13px;line-height:1.4}
.hp{position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden}
.error{margin:10px 0 0;color:#b3261e;font-size:14px;font-weight:600}
.error:empty{display:none}
.primary{display:block;width:100%;min-height:44px;margin:14px 0 0;padding:11px 16px;border:0;border-radius:8px;background:${primary};color:${on};font:inherit;font-weight:700;text-align:center;text-decoration:none;cursor:pointer}
.primary[aria-disabled=true]{opacity:.65;cursor:progress}
.close{position:absolute;top:8px;right:8px;width:40px;height:40px;padding:0;border:0;border-radius:50%;background:transparent;color:#444;font:26px/1 system-ui,sans-serif;cursor:pointer}
.close:hover{background:#f0f2f5}
:focus-visible{outline:3px solid ${ring};outline-offset:2px}
.wheel{display:block;width:min(260px,70vw);height:auto;margin:0 auto 12px}
.prize{font-size:18px;font-weight:700}
.code{display:inline-block;padding:6px 12px;border:2px dashed ${ring};border-radius:8px;font:700 18px/1.3 ui-monospace,Menlo,Consolas,monospace;letter-spacing:.05em;user-select:all}
@media (prefers-reduced-motion:no-preference){.dialog{animation:oc-in .18s ease-out}}
@keyframes oc-in{from{opacity:0}to{opacity:1}}`;
  }

  // -- building blocks --------------------------------------------------------------------------

  function el(tag, attrs, children) {
    const node = doc.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) {
        continue;
      }
      if (name === "text") {
        node.textContent = String(value);
      } else {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children || []) {
      if (child) {
        node.appendChild(child);
      }
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = doc.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  const point = (degrees, r) => {
    const a = (degrees * Math.PI) / 180;
    return (r * Math.sin(a)).toFixed(2) + " " + (-r * Math.cos(a)).toFixed(2);
  };

  const shorten = (text, max) => (text.length > max ? text.slice(0, max - 1) + "…" : text);

  // The wheel: segment i spans [i, i+1) * 360/n degrees clockwise from the pointer at the top.
  function buildWheel(segments, primary) {
    const n = segments.length;
    const seg = 360 / n;
    const labels = segments.map((s) => String(s.label));
    const colours =
      n % 2 === 0 ? [primary, mix(primary, "#ffffff", 0.75)] : [primary, mix(primary, "#ffffff", 0.75), mix(primary, "#ffffff", 0.45)];
    const node = svg("svg", {
      viewBox: "-110 -110 220 220",
      class: "wheel",
      role: "img",
      "aria-label": T.wheelLabel + labels.join(", "),
    });
    const rotor = svg("g", { class: "rotor" });
    segments.forEach((s, i) => {
      const fill = colours[i % colours.length];
      const shape =
        n === 1
          ? svg("circle", { r: 100, fill: fill })
          : svg("path", {
              d: `M0 0L${point(i * seg, 100)}A100 100 0 ${seg > 180 ? 1 : 0} 1 ${point((i + 1) * seg, 100)}Z`,
              fill: fill,
            });
      shape.setAttribute("data-segment", String(s.id));
      rotor.appendChild(shape);
      // Along the radius, from the rim; flipped on the left half so that it reads upright.
      const centre = (i + 0.5) * seg;
      const left = centre > 180;
      const label = shorten(labels[i], 26);
      const text = svg("text", {
        transform: left ? `rotate(${centre + 90}) translate(-92 0)` : `rotate(${centre - 90}) translate(92 0)`,
        "text-anchor": left ? "start" : "end",
        "dominant-baseline": "middle",
        fill: onColour(fill),
        "font-size": Math.max(5.5, Math.min(n > 12 ? 7 : 9, 74 / (0.6 * label.length))).toFixed(1),
        "font-weight": 700,
        "font-family": "system-ui,sans-serif",
      });
      text.textContent = label;
      rotor.appendChild(text);
    });
    node.appendChild(rotor);
    node.appendChild(svg("circle", { r: 100, fill: "none", stroke: "#1c1e21", "stroke-width": 3 }));
    node.appendChild(svg("circle", { r: 12, fill: "#ffffff", stroke: "#1c1e21", "stroke-width": 3 }));
    node.appendChild(svg("path", { d: "M0 -86L-10 -108L10 -108Z", fill: "#1c1e21" }));

    function spinTo(id) {
      const i = segments.findIndex((s) => String(s.id) === String(id));
      if (i < 0) {
        return Promise.resolve();
      }
      // Land inside the segment, not always on its centre line, after five turns.
      const target = 360 * 5 + (360 - (i + 0.5) * seg) + (Math.random() - 0.5) * seg * 0.6;
      node.setAttribute("data-segment", String(id));
      node.setAttribute("data-rotation", target.toFixed(2));
      const still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      const ms = still ? 0 : SPIN_MS;
      return new Promise((resolve) => {
        const start = performance.now();
        const frame = (now) => {
          const k = ms ? Math.min(1, Math.max(0, (now - start) / ms)) : 1;
          const eased = 1 - Math.pow(1 - k, 3);
          rotor.setAttribute("transform", `rotate(${(target * eased).toFixed(2)})`);
          if (k < 1) {
            requestAnimationFrame(frame);
          } else {
            resolve();
          }
        };
        requestAnimationFrame(frame);
      });
    }

    return { node: node, spinTo: spinTo };
  }

  // -- the form -------------------------------------------------------------------------------

  let form = null; // the public config from the token answer
  let inline = false;
  let isOpen = false;
  let dialog = null;
  let returnFocus = null;

  const FOCUSABLE =
    'a[href],button:not([disabled]),input:not([disabled]):not([tabindex="-1"]),select,textarea,[tabindex]:not([tabindex="-1"])';

  function focusables() {
    return Array.from(dialog.querySelectorAll(FOCUSABLE)).filter(
      (n) => n.getClientRects().length > 0 && !n.closest("[aria-hidden=true]")
    );
  }

  function focusFirst() {
    const field = dialog.querySelector(".field");
    const target = field && field.getClientRects().length ? field : focusables()[0];
    if (target) {
      target.focus();
    }
  }

  function onKey(event) {
    if (inline) {
      return;
    }
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    } else if (event.key === "Tab") {
      const items = focusables();
      if (!items.length) {
        event.preventDefault();
        return;
      }
      const at = items.indexOf(root.activeElement);
      let next = null;
      if (event.shiftKey && at <= 0) {
        next = items[items.length - 1];
      } else if (!event.shiftKey && (at === -1 || at === items.length - 1)) {
        next = items[0];
      }
      if (next) {
        event.preventDefault();
        next.focus();
      }
    }
  }

  // Focus that leaves a modal dialog (a click outside, a screen reader's jump) is brought back;
  // from the document, focus inside the shadow root is seen on the host element.
  function keepFocus(event) {
    if (isOpen && !inline && event.target !== host) {
      focusFirst();
    }
  }

  function render() {
    const look = form.look || {};
    const primary = COLOUR.test(look.primary_color || "") ? look.primary_color : "#0866ff";
    const position = POSITIONS.includes(look.position) ? look.position : "center";
    const segments = (form.wheel && form.wheel.segments) || [];
    const isWheel = form.kind === "minigame" && segments.length > 0;
    root.replaceChildren(el("style", { text: css(primary) }));
    if (!inline && position === "center") {
      const backdrop = el("div", { class: "backdrop" });
      backdrop.addEventListener("click", close);
      root.appendChild(backdrop);
    }
    dialog = el("div", {
      class: "dialog " + (inline ? "inline" : position),
      role: inline ? "region" : "dialog",
      "aria-modal": inline ? null : "true",
      "aria-labelledby": "oc-title",
      "aria-describedby": "oc-body",
    });
    const panel = dialog;
    dialog.addEventListener("keydown", onKey);
    if (!inline) {
      const closer = el("button", { type: "button", class: "close", "aria-label": T.close, text: "×" });
      closer.addEventListener("click", close);
      dialog.appendChild(closer);
    }
    const intro = [];
    if (look.image_url && /^https:\/\/\S+$/.test(look.image_url)) {
      intro.push(el("img", { class: "hero", src: look.image_url, alt: "" }));
    }
    intro.push(el("h2", { id: "oc-title", text: look.title || (isWheel ? T.wheelTitle : T.title) }));
    intro.push(el("p", { id: "oc-body", text: look.body || (isWheel ? T.wheelBody : T.body) }));
    intro.forEach((n) => dialog.appendChild(n));
    const wheel = isWheel ? buildWheel(segments, primary) : null;
    if (wheel) {
      dialog.appendChild(wheel.node);
    }

    const email = el("input", {
      id: "oc-email",
      class: "field",
      type: "email",
      name: "email",
      autocomplete: "email",
      inputmode: "email",
      autocapitalize: "off",
      spellcheck: "false",
      required: true,
      placeholder: T.placeholder,
    });
    const hp = el("input", {
      id: "oc-hp",
      type: "text",
      name: String(form.honeypot_field || "website"),
      tabindex: "-1",
      autocomplete: "off",
    });
    const consent = el("input", { id: "oc-consent", type: "checkbox", name: "consent", required: true });
    const consentText = (form.consent && form.consent.text) || T.consent;
    const error = el("p", { id: "oc-error", class: "error", role: "alert" });
    const buttonLabel = look.button_label || (isWheel ? T.spin : T.submit);
    const submit = el("button", { type: "submit", class: "primary", text: buttonLabel });
    const formNode = el("form", { novalidate: true }, [
      el("label", { for: "oc-email", text: T.email }),
      email,
      el("div", { class: "hp", "aria-hidden": "true" }, [el("label", { for: "oc-hp", text: "Website" }), hp]),
      el("div", { class: "consent" }, [consent, el("label", { for: "oc-consent", text: consentText })]),
      error,
      submit,
    ]);
    dialog.appendChild(formNode);
    root.appendChild(dialog);

    let busy = false;

    function fail(message, field) {
      error.textContent = message;
      for (const input of [email, consent]) {
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      }
      if (field) {
        field.setAttribute("aria-invalid", "true");
        field.setAttribute("aria-describedby", "oc-error");
        field.focus();
      }
    }

    formNode.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (busy) {
        return;
      }
      const address = email.value.trim();
      if (!address) {
        return fail(T.emailEmpty, email);
      }
      if (!EMAIL.test(address)) {
        return fail(T.emailInvalid, email);
      }
      if (!consent.checked) {
        return fail(T.consentNeeded, consent);
      }
      fail("", null);
      busy = true;
      // aria-disabled, not disabled: a disabled button drops the focus out of the dialog.
      submit.setAttribute("aria-disabled", "true");
      submit.textContent = T.sending;
      let answer;
      try {
        answer = await post(address, hp, false);
      } catch (trouble) {
        busy = false;
        submit.removeAttribute("aria-disabled");
        submit.textContent = buttonLabel;
        return fail(trouble.message || T.failed, trouble.field === "email" ? email : null);
      }
      if (!inline) {
        const record = readStore();
        record.done = true;
        writeStore(record);
      }
      if (wheel && answer.spin && answer.spin.segment_id) {
        await wheel.spinTo(answer.spin.segment_id);
      }
      intro.forEach((n) => n.remove());
      const box = success(answer, look);
      formNode.replaceWith(box);
      if (panel.isConnected) {
        box.querySelector("h2").focus();
      }
      state("done");
    });
  }

  function success(answer, look) {
    const pending = answer.status === "pending_confirmation";
    const box = el("div", { role: "status" }, [
      el("h2", { id: "oc-title", tabindex: "-1", text: look.success_title || T.thanks }),
      el("p", { id: "oc-body", text: look.success_body || (pending ? T.checkEmail : T.subscribed) }),
    ]);
    const spin = answer.spin;
    if (spin) {
      if (spin.segment_id && spin.label && spin.status !== "out_of_stock") {
        box.appendChild(el("p", { class: "prize", text: T.result + spin.label }));
        if (spin.code) {
          box.appendChild(el("p", {}, [doc.createTextNode(T.code), el("span", { class: "code", text: spin.code })]));
        } else if (spin.status === "pending") {
          box.appendChild(el("p", { text: T.keep }));
        }
      } else {
        box.appendChild(el("p", { text: T.outOfStock }));
      }
    }
    const url = String(answer.messenger_url || "");
    if (/^https:\/\/\S+$/.test(url)) {
      box.appendChild(
        el("a", {
          class: "primary",
          href: url,
          target: "_blank",
          rel: "noopener noreferrer",
          text: look.messenger_button_label || T.messenger,
        })
      );
    }
    return box;
  }

  function open() {
    const now = Date.now();
    const record = readStore();
    record.shown = recentShows(record, now).concat(now).slice(-100);
    writeStore(record);
    returnFocus = doc.activeElement;
    isOpen = true;
    render();
    state("open");
    doc.addEventListener("focusin", keepFocus, true);
    focusFirst();
  }

  function close() {
    if (!isOpen) {
      return;
    }
    isOpen = false;
    doc.removeEventListener("focusin", keepFocus, true);
    root.replaceChildren();
    dialog = null;
    if (host.getAttribute("data-state") === "open") {
      state("closed");
    }
    const back = returnFocus;
    returnFocus = null;
    if (back && back !== doc.body && back.isConnected && typeof back.focus === "function") {
      back.focus();
    }
  }

  // -- when to open ---------------------------------------------------------------------------

  function scrolledPercent() {
    const max = doc.documentElement.scrollHeight - window.innerHeight;
    return max <= 0 ? 100 : (window.scrollY / max) * 100;
  }

  function arm(triggers) {
    const delay = typeof triggers.delay_seconds === "number" ? triggers.delay_seconds : null;
    const depth = typeof triggers.scroll_percent === "number" ? triggers.scroll_percent : null;
    const exit = Boolean(triggers.exit_intent);
    if (delay === null && depth === null && !exit) {
      open();
      return;
    }
    state("waiting");
    const undo = [];
    let fired = false;
    const fire = () => {
      if (!fired) {
        fired = true;
        undo.forEach((f) => f());
        open();
      }
    };
    if (delay !== null) {
      const timer = setTimeout(fire, delay * 1000);
      undo.push(() => clearTimeout(timer));
    }
    if (depth !== null) {
      const onScroll = () => {
        if (scrolledPercent() >= depth) {
          fire();
        }
      };
      window.addEventListener("scroll", onScroll, { passive: true });
      undo.push(() => window.removeEventListener("scroll", onScroll));
    }
    if (exit) {
      // The pointer leaving through the top of the window: towards the tabs or the address bar.
      const onOut = (event) => {
        if (!event.relatedTarget && event.clientY <= 0) {
          fire();
        }
      };
      doc.addEventListener("mouseout", onOut);
      undo.push(() => doc.removeEventListener("mouseout", onOut));
    }
    if (depth !== null && scrolledPercent() >= depth) {
      fire();
    }
  }

  // -- start ----------------------------------------------------------------------------------

  function mount() {
    if (host.isConnected) {
      return;
    }
    const slot = doc.querySelector('[data-outreach-form="' + FORM + '"]');
    if (inline && slot) {
      slot.appendChild(host);
    } else if (inline && script && script.parentNode && script.parentNode !== doc.head) {
      script.parentNode.insertBefore(host, script.nextSibling);
    } else {
      doc.body.appendChild(host);
    }
  }

  function start(publicForm) {
    form = publicForm;
    inline = form.kind === "embedded";
    mount();
    if (inline) {
      isOpen = false;
      render();
      state("open");
      return;
    }
    const record = readStore();
    record.frequency = (form.triggers && form.triggers.frequency) || null;
    writeStore(record);
    const reason = capped(record, Date.now());
    if (reason) {
      state(reason);
      return;
    }
    arm(form.triggers || {});
  }

  const ready = new Promise((resolve) => {
    if (doc.readyState === "loading") {
      doc.addEventListener("DOMContentLoaded", resolve, { once: true });
    } else {
      resolve();
    }
  });

  const before = capped(readStore(), Date.now());
  if (before) {
    // Nothing to show: no token is fetched, so a capped visitor costs the server nothing.
    ready.then(() => {
      mount();
      state(before);
    });
    return;
  }
  Promise.all([fetchToken(), ready]).then(
    ([fetched]) => start(fetched.form),
    (trouble) => {
      ready.then(() => {
        mount();
        state("unavailable");
      });
      if (window.console) {
        window.console.warn("Outreach form " + FORM + " unavailable:", trouble && trouble.message);
      }
    }
  );
})(/*__OUTREACH_CONFIG__*/null);
