"""User-written templates: escaping, StrictUndefined, the sandbox, its time and size caps, and
the save-time check."""

from __future__ import annotations

import itertools
import time
import unicodedata

import pytest

from orchestrator.errors import FieldError, ValidationFailed
from orchestrator.rendering import (
    ContactVars,
    FallbackLinks,
    RenderError,
    RenderLimits,
    TemplateContext,
    check_template,
    render_messenger_text,
    render_user_html,
    render_user_text,
)
from orchestrator.rendering.sandbox import GuardedSandbox, compile_guarded, render_guarded

CONTEXT = TemplateContext(
    contact=ContactVars(
        name="<script>alert(1)</script>",
        locale="vi_VN",
        email="an@example.vn",
        attributes={"city": "Tôi & bạn", "orders": [3, 5], "vip": True},
    ),
    page_username="shop.abc",
    campaign_name="Khuyến mãi tháng 12",
    links=FallbackLinks(
        support_url="https://o.example/r/s?a=1&b=2",
        subscribe_url="https://o.example/r/n",
        unsubscribe_url="https://o.example/u/x",
    ),
)
NAMELESS = TemplateContext(contact=ContactVars(name=None, attributes={}))
NO_LOOP_CAP = RenderLimits(max_loop_iterations=10**12)


def fail(source: str, *, limits: RenderLimits = NO_LOOP_CAP) -> RenderError:
    with pytest.raises(RenderError) as caught:
        render_user_text(source, CONTEXT, field="messenger.text", limits=limits)
    assert caught.value.field == "messenger.text"
    return caught.value


# --- escaping ------------------------------------------------------------------------------


def test_html_escapes_contact_values_and_keeps_the_authors_markup() -> None:
    html = render_user_html(
        "<p>Chào {{ contact.name }}, {{ contact.attributes.city }}</p>", CONTEXT, field="email.html"
    )
    assert html == ("<p>Chào &lt;script&gt;alert(1)&lt;/script&gt;, Tôi &amp; bạn</p>")


def test_text_and_messenger_keep_values_raw() -> None:
    source = "Chào {{ contact.name }}, {{ contact.attributes.city }}"
    expected = "Chào <script>alert(1)</script>, Tôi & bạn"
    assert render_user_text(source, CONTEXT, field="email.text") == expected
    assert render_messenger_text(source, CONTEXT) == expected


def test_links_escape_in_html_attributes_only() -> None:
    source = '<a href="{{ links.support }}">x</a>'
    assert render_user_html(source, CONTEXT, field="f") == (
        '<a href="https://o.example/r/s?a=1&amp;b=2">x</a>'
    )
    assert render_user_text("{{ links.support }}", CONTEXT, field="f") == (
        "https://o.example/r/s?a=1&b=2"
    )


def test_every_variable_is_reachable() -> None:
    source = (
        "{{ contact.email }}|{{ contact.locale }}|{{ page.username }}|{{ campaign.name }}"
        "|{{ links.subscribe }}|{{ links.unsubscribe }}|{{ contact.attributes.orders | sum }}"
    )
    assert render_user_text(source, CONTEXT, field="f") == (
        "an@example.vn|vi_VN|shop.abc|Khuyến mãi tháng 12|https://o.example/r/n"
        "|https://o.example/u/x|8"
    )


def test_output_is_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Ánh")
    context = TemplateContext(contact=ContactVars(name=decomposed))
    rendered = render_messenger_text("Chào {{ contact.name }}", context)
    assert rendered == "Chào Nguyễn Thị Ánh"
    assert unicodedata.is_normalized("NFC", rendered)


# --- StrictUndefined and | default -----------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ contact.name }}",
        "{{ contact.attributes.zip }}",
        "{{ links.support }}",
        "{% if contact.attributes.zip %}x{% endif %}",
    ],
)
def test_a_missing_value_fails_the_render(source: str) -> None:
    with pytest.raises(RenderError) as caught:
        render_user_text(source, NAMELESS, field="steps.0.messenger.text")
    assert caught.value.code == "undefined"
    assert caught.value.field == "steps.0.messenger.text"
    assert "default" in caught.value.message


def test_default_covers_a_missing_value() -> None:
    source = "Chào {{ contact.name | default('bạn') }}! {{ contact.attributes.zip | default('-') }}"
    assert render_messenger_text(source, NAMELESS) == "Chào bạn! -"
    assert render_messenger_text(source, CONTEXT).startswith("Chào <script>")


def test_an_empty_name_counts_as_missing() -> None:
    context = TemplateContext(contact=ContactVars(name="  "))
    assert render_messenger_text("{{ contact.name | default('bạn') }}", context) == "bạn"


def test_is_defined_works_on_optional_attributes() -> None:
    source = "{% if contact.attributes.zip is defined %}zip{% else %}none{% endif %}"
    assert render_messenger_text(source, CONTEXT) == "none"


# --- the sandbox ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ contact.__class__ }}",
        "{{ contact.attributes.orders.append(1) }}",
        "{{ contact.update({'name': 'x'}) }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_the_sandbox_refuses_internals_and_mutation(source: str) -> None:
    error = fail(source)
    assert error.code in {"forbidden", "undefined"}


def test_refused_attribute_is_a_security_error_not_a_missing_value() -> None:
    assert fail("{{ ''.__class__ }}").code == "forbidden"
    assert fail("{{ contact.attributes.orders.append(1) }}").code == "forbidden"


# --- time and size caps --------------------------------------------------------------------


def test_an_endless_loop_stops_within_a_second() -> None:
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    error = fail(source, limits=RenderLimits(time_limit=0.2, max_loop_iterations=10**12))
    elapsed = time.monotonic() - started
    assert error.code == "timeout"
    assert elapsed < 1.0


def test_the_deadline_is_read_from_the_injected_clock() -> None:
    ticks = itertools.count()
    limits = RenderLimits(time_limit=50, max_loop_iterations=10**12, clock=lambda: next(ticks))
    error = fail("{% for i in range(1000) %}{{ i }}{% endfor %}", limits=limits)
    assert error.code == "timeout"
    assert "50 s" in error.message


def test_time_the_thread_spends_off_the_cpu_does_not_count() -> None:
    class Descheduled:
        """Prints after the thread was off the CPU for a while (busy cores, a blocked call)."""

        def __str__(self) -> str:
            time.sleep(0.1)
            return "Lan"

    template = compile_guarded(GuardedSandbox(autoescape=False), "Chào {{ name }}!")
    limits = RenderLimits(time_limit=0.05)  # the default clock: this thread's CPU time
    assert render_guarded(template, {"name": Descheduled()}, limits) == "Chào Lan!"


def test_a_quick_render_is_not_cut_short_by_the_clock() -> None:
    limits = RenderLimits(time_limit=10**6, clock=itertools.count().__next__)
    assert (
        render_user_text(
            "{% for i in range(3) %}{{ i }}{% endfor %}", CONTEXT, field="f", limits=limits
        )
        == "012"
    )


def test_loops_share_one_iteration_budget() -> None:
    limits = RenderLimits(max_loop_iterations=1000)
    source = "{% for i in range(40) %}{% for j in range(40) %}{% endfor %}{% endfor %}"
    error = fail(source, limits=limits)
    assert error.code == "too_large"
    assert "1000 iterations" in error.message
    ok = "{% for i in range(30) %}{% for j in range(30) %}{% endfor %}{% endfor %}done"
    assert render_user_text(ok, CONTEXT, field="f", limits=limits) == "done"


def test_a_huge_range_is_refused() -> None:
    assert fail("{% for i in range(10**9) %}{% endfor %}").code == "too_large"


def test_output_is_capped() -> None:
    limits = RenderLimits(max_output_chars=1000, max_loop_iterations=10**12)
    error = fail("{% for i in range(2000) %}x{% endfor %}", limits=limits)
    assert error.code == "too_large"
    assert "1000 characters" in error.message
    assert (
        len(
            render_user_text(
                "{% for i in range(1000) %}x{% endfor %}", CONTEXT, field="f", limits=limits
            )
        )
        == 1000
    )


def test_default_output_cap_is_256_kb() -> None:
    error = fail("{% for i in range(300) %}{{ 'x' * 1000 }}{% endfor %}")
    assert error.code == "too_large"
    assert "262144" in error.message


def test_output_buffered_in_a_block_that_is_never_printed_counts() -> None:
    source = "{% set x %}{% for i in range(100000) %}" + "a" * 50 + "{% endfor %}{% endset %}ok"
    assert fail(source).code == "too_large"


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**9 }}",
        "{{ [1] * 10**9 }}",
        "{{ ['y' * 100000] * 100 }}",
        "{{ 2 ** 1000000 }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%*d' % (10**9, 1) }}",
        "{{ '%9999999d' | format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:{}}'.format(1, 10**9) }}",
        "{{ 'x' | center(10**9) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x'.zfill(10**9) }}",
        "{{ 'a\tb'.expandtabs(10**9) }}",
        "{{ 'x' | indent(10**9) }}",
        "{{ [1] | slice(10**9) | list }}",
        "{{ 'ab' | replace('', 'y' * 200000) }}",
        "{{ 'ab'.replace('', 'y' * 200000) }}",
        "{% set b = 'y' * 200000 %}{{ [b, b] | join }}",
        "{% set b = 'y' * 200000 %}{{ b.join(['a', 'b', 'c']) }}",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    ],
)
def test_amplifying_operations_are_refused_before_they_allocate(source: str) -> None:
    started = time.monotonic()
    assert fail(source).code == "too_large"
    assert time.monotonic() - started < 0.5


def test_sum_adds_numbers_only() -> None:
    assert fail("{{ [[1], [2]] | sum(start=[]) }}").code == "forbidden"


def test_ordinary_uses_of_guarded_operations_still_work() -> None:
    source = (
        "{{ '-' * 3 }}{{ [1, 2] * 2 }}{{ 2 ** 10 }}{{ '%05d' % 42 }}{{ '%s!' | format('a') }}"
        "{{ '{:>4}'.format(7) }}{{ 'ab' | center(6) }}|{{ 'a b' | replace(' ', '_') }}"
        "{{ ['x', 'y'] | join(', ') }}{{ '+'.join(['1', '2']) }}{{ [1, 2] | sum }}"
        "{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}"
        "{% for x in contact.attributes.orders %}{{ loop.index }}/{{ loop.length }}{% endfor %}"
    )
    assert render_user_text(source, CONTEXT, field="f") == (
        "---[1, 2, 1, 2]102400042a!   7  ab  |a_bx, y1+23a=11/22/2"
    )


def test_a_template_that_was_never_checked_fails_its_render_as_syntax() -> None:
    error = fail("Chào {{ contact.name }")
    assert error.code == "syntax"
    assert error.message.startswith("line 1: ")


def test_indent_by_a_string_is_bounded_too() -> None:
    assert fail("{{ ('a\\n' * 1000) | indent('x' * 1000) }}").code == "too_large"
    assert render_user_text("{{ 'a\\nb' | indent('> ') }}", CONTEXT, field="f") == "a\n> b"


def test_other_template_errors_fail_that_render_with_the_field() -> None:
    error = fail("{{ 1 / 0 }}")
    assert error.code == "error"
    assert "ZeroDivisionError" in error.message


def test_a_too_long_source_is_refused() -> None:
    limits = RenderLimits(max_source_chars=10)
    assert fail("x" * 11, limits=limits).code == "too_large"
    with pytest.raises(RenderError) as caught:
        check_template("x" * 11, field="email.html", limits=limits)
    assert caught.value.code == "too_large"


def test_render_error_is_a_validation_failure_naming_the_field() -> None:
    error = fail("{{ contact.nope }}")
    assert isinstance(error, ValidationFailed)
    assert error.status_code == 422
    assert error.errors == [FieldError("messenger.text", error.message, "undefined")]


# --- check_template --------------------------------------------------------------------------


def test_check_template_accepts_the_documented_variables_and_globals() -> None:
    check_template(
        "Chào {{ contact.name | default('bạn') }} từ {{ page.username }} ({{ campaign.name }})"
        "{% for i in range(3) %}{{ i }}{% endfor %}{{ links.support }}"
        "{% set ns = namespace(n=0) %}{{ dict(a=1) }}{{ ns.n }}",
        field="steps.0.messenger.text",
    )


def test_check_template_names_unknown_variables_and_the_field() -> None:
    with pytest.raises(RenderError) as caught:
        check_template(
            "{{ contcat.name }} {{ user }} {{ contact.name }}", field="steps.1.email.subject"
        )
    error = caught.value
    assert error.code == "unknown_variable"
    assert error.field == "steps.1.email.subject"
    assert "'contcat'" in error.message and "'user'" in error.message
    assert "contact, links, page" in error.message


def test_check_template_takes_its_own_allowed_variables() -> None:
    check_template("{{ order.id }}", field="f", allowed_variables={"order"})
    with pytest.raises(RenderError):
        check_template("{{ contact.name }}", field="f", allowed_variables={"order"})


@pytest.mark.parametrize(
    "source",
    ["{{ contact.name }", "{% for x in y %}", "{% endif %}", "{{ contact.name | no_such_filter }}"],
)
def test_check_template_reports_syntax_errors_with_the_field_and_line(source: str) -> None:
    with pytest.raises(RenderError) as caught:
        check_template(source, field="steps.2.email.html", allowed_variables={"contact", "y"})
    assert caught.value.code == "syntax"
    assert caught.value.field == "steps.2.email.html"
    assert caught.value.message.startswith("line 1: ")


def test_check_template_does_not_know_lipsum() -> None:
    with pytest.raises(RenderError) as caught:
        check_template("{{ lipsum(5) }}", field="f")
    assert caught.value.code == "unknown_variable"


def test_guards_cannot_be_called_by_name() -> None:
    # The guard filters are registered under names with a space, which a template cannot spell.
    with pytest.raises(RenderError) as caught:
        check_template("{{ [1] | loop guard }}", field="f")
    assert caught.value.code == "syntax"
