"""Block Kit validation with Slack's strictness, for the fake Web API and for tests of Block Kit builders.

slack_sdk's models check many length limits, but they silently drop unknown block types, elements and
fields, accept plain strings where Slack wants text objects, and know nothing of per-message block
counts, element placement, duplicate ids or initial options that match no option. The structural walk
below covers those gaps with exact JSON pointers; each block that passes it is then parsed and
re-serialised by slack_sdk (`Block.parse(d).to_dict()` validates deeply) as a backstop, and whatever
the model dropped on the way is reported as an unknown field.

Problems read like Slack's own `response_metadata.messages`: `"<json-pointer>: <what is wrong>"`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

Surface = Literal["message", "modal", "home"]

MAX_BLOCKS: dict[str, int] = {"message": 50, "modal": 100, "home": 100}
MAX_MESSAGE_TEXT = 40_000
MAX_VIEW_BYTES = 250_000
MAX_MRKDWN = 3000

KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "alert",
        "auth_provider",
        "call",
        "card",
        "carousel",
        "container",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "plan",
        "rich_text",
        "section",
        "table",
        "task_card",
        "video",
    }
)

SELECTS = frozenset({"static_select", "external_select", "users_select", "conversations_select", "channels_select"})
MULTI_SELECTS = frozenset(f"multi_{s}" for s in SELECTS)
INPUT_ELEMENTS = (
    frozenset(
        {
            "plain_text_input",
            "email_text_input",
            "url_text_input",
            "number_input",
            "rich_text_input",
            "file_input",
            "checkboxes",
            "radio_buttons",
            "datepicker",
            "timepicker",
            "datetimepicker",
        }
    )
    | SELECTS
    | MULTI_SELECTS
)
ACTIONS_ELEMENTS = (
    frozenset(
        {
            "button",
            "checkboxes",
            "radio_buttons",
            "datepicker",
            "timepicker",
            "datetimepicker",
            "overflow",
            "workflow_button",
        }
    )
    | SELECTS
    | MULTI_SELECTS
)
SECTION_ACCESSORIES = (
    frozenset(
        {
            "button",
            "checkboxes",
            "radio_buttons",
            "datepicker",
            "timepicker",
            "image",
            "overflow",
            "workflow_button",
        }
    )
    | SELECTS
    | MULTI_SELECTS
)
TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
_TEXT_KEYS = {"plain_text": {"type", "text", "emoji"}, "mrkdwn": {"type", "text", "verbatim"}}
_VIEW_KEYS = {
    "modal": {
        "type",
        "title",
        "blocks",
        "close",
        "submit",
        "private_metadata",
        "callback_id",
        "clear_on_close",
        "notify_on_close",
        "external_id",
        "submit_disabled",
    },
    "home": {"type", "blocks", "private_metadata", "callback_id", "external_id"},
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Checker:
    """Collects problems for one list of blocks (block_id uniqueness spans the list)."""

    def __init__(self, surface: str) -> None:
        self.surface = surface
        self.problems: list[str] = []
        self.block_ids: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    # -- composition objects ------------------------------------------------------------------

    def text(
        self,
        value: Any,
        path: str,
        *,
        max_len: int | None = None,
        plain_only: bool = False,
        required: bool = True,
    ) -> None:
        if value is None:
            if required:
                self.add(path, "is required")
            return
        if not isinstance(value, dict):
            self.add(path, f"must be a text object ({{'type': 'plain_text', 'text': ...}}), not {_kind(value)}")
            return
        kind = value.get("type")
        if kind not in TEXT_TYPES:
            self.add(path + "/type", f"text object type must be plain_text or mrkdwn, not {kind!r}")
            return
        if plain_only and kind != "plain_text":
            self.add(path + "/type", "must be plain_text here")
        for key in value.keys() - _TEXT_KEYS[kind]:
            self.add(f"{path}/{key}", f"unknown field {key!r} for a {kind} text object")
        text = value.get("text")
        if not isinstance(text, str):
            self.add(path + "/text", f"must be a string, not {_kind(text)}")
            return
        if not text:
            self.add(path + "/text", "must not be empty")
        limit = max_len if max_len is not None else MAX_MRKDWN
        if kind == "mrkdwn":
            limit = min(limit, MAX_MRKDWN)
        if len(text) > limit:
            self.add(path + "/text", f"must be at most {limit} characters (got {len(text)})")

    def string(self, value: Any, path: str, *, max_len: int, required: bool = False, min_len: int = 0) -> None:
        if value is None:
            if required:
                self.add(path, "is required")
            return
        if not isinstance(value, str):
            self.add(path, f"must be a string, not {_kind(value)}")
        elif len(value) > max_len:
            self.add(path, f"must be at most {max_len} characters (got {len(value)})")
        elif len(value) < min_len:
            self.add(path, f"must be at least {min_len} characters")

    def option(self, value: Any, path: str, *, plain_only: bool, url_allowed: bool = False) -> None:
        if not isinstance(value, dict):
            self.add(path, f"an option must be an object, not {_kind(value)}")
            return
        self.text(value.get("text"), path + "/text", max_len=75, plain_only=plain_only)
        self.string(value.get("value"), path + "/value", max_len=150, required=True)
        self.text(value.get("description"), path + "/description", max_len=75, required=False)
        if "url" in value and not url_allowed:
            self.add(path + "/url", "url is only allowed on overflow menu options")
        for key in value.keys() - {"text", "value", "description", "url"}:
            self.add(f"{path}/{key}", f"unknown field {key!r} for an option")

    def options(
        self,
        options: Any,
        path: str,
        *,
        plain_only: bool,
        min_count: int = 1,
        max_count: int = 100,
        url_allowed: bool = False,
    ) -> list[dict[str, Any]]:
        if not isinstance(options, list):
            self.add(path, f"must be a list of options, not {_kind(options)}")
            return []
        if not min_count <= len(options) <= max_count:
            self.add(path, f"must have between {min_count} and {max_count} options (got {len(options)})")
        for i, option in enumerate(options):
            self.option(option, f"{path}/{i}", plain_only=plain_only, url_allowed=url_allowed)
        return [o for o in options if isinstance(o, dict)]

    def confirm(self, value: Any, path: str) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.add(path, f"a confirmation dialog must be an object, not {_kind(value)}")
            return
        self.text(value.get("title"), path + "/title", max_len=100, plain_only=True)
        self.text(value.get("text"), path + "/text", max_len=300)
        self.text(value.get("confirm"), path + "/confirm", max_len=30, plain_only=True)
        self.text(value.get("deny"), path + "/deny", max_len=30, plain_only=True)

    def initial_matches(self, initial: Any, options: list[dict[str, Any]], path: str) -> None:
        """Slack rejects an initial option that is not exactly one of the options."""
        picked = initial if isinstance(initial, list) else [initial]
        for i, chosen in enumerate(picked):
            where = f"{path}/{i}" if isinstance(initial, list) else path
            if not isinstance(chosen, dict):
                self.add(where, f"must be an option object, not {_kind(chosen)}")
            elif not any(_same_option(chosen, o) for o in options):
                self.add(where, f"initial option {chosen.get('value')!r} is not one of the options")

    # -- elements --------------------------------------------------------------------------------

    def element(self, element: Any, path: str, allowed: Iterable[str], where: str) -> None:
        if not isinstance(element, dict):
            self.add(path, f"an element must be an object, not {_kind(element)}")
            return
        kind = element.get("type")
        allowed = frozenset(allowed)
        if kind not in allowed:
            self.add(path + "/type", f"element type {kind!r} is not allowed in {where}")
            return
        self.string(element.get("action_id"), path + "/action_id", max_len=255, min_len=1)
        if "placeholder" in element:
            self.text(element["placeholder"], path + "/placeholder", max_len=150, plain_only=True)
        self.confirm(element.get("confirm"), path + "/confirm")

        if kind == "button":
            self.text(element.get("text"), path + "/text", max_len=75, plain_only=True)
            self.string(element.get("value"), path + "/value", max_len=2000, min_len=1)
            self.string(element.get("url"), path + "/url", max_len=3000, min_len=1)
            self.string(element.get("accessibility_label"), path + "/accessibility_label", max_len=75)
            if element.get("style") not in (None, "primary", "danger"):
                self.add(path + "/style", f"must be 'primary' or 'danger', not {element.get('style')!r}")
        elif kind in ("static_select", "multi_static_select"):
            has_options, has_groups = "options" in element, "option_groups" in element
            options: list[dict[str, Any]] = []
            if has_options == has_groups:
                self.add(path, "needs exactly one of options and option_groups")
            if has_options:
                options = self.options(element["options"], path + "/options", plain_only=True)
            if has_groups:
                groups = element["option_groups"]
                if not isinstance(groups, list) or not 1 <= len(groups) <= 100:
                    self.add(path + "/option_groups", "must be a list of 1 to 100 option groups")
                else:
                    for i, group in enumerate(groups):
                        gpath = f"{path}/option_groups/{i}"
                        if not isinstance(group, dict):
                            self.add(gpath, "an option group must be an object")
                            continue
                        self.text(group.get("label"), gpath + "/label", max_len=75, plain_only=True)
                        options += self.options(group.get("options"), gpath + "/options", plain_only=True)
            key = "initial_option" if kind == "static_select" else "initial_options"
            if element.get(key) is not None:
                self.initial_matches(element[key], options, f"{path}/{key}")
        elif kind == "overflow":
            self.options(
                element.get("options"),
                path + "/options",
                plain_only=True,
                min_count=2,
                max_count=5,
                url_allowed=True,
            )
        elif kind in ("checkboxes", "radio_buttons"):
            options = self.options(element.get("options"), path + "/options", plain_only=False, max_count=10)
            key = "initial_option" if kind == "radio_buttons" else "initial_options"
            if element.get(key) is not None:
                self.initial_matches(element[key], options, f"{path}/{key}")
        elif kind in ("external_select", "multi_external_select"):
            key = "initial_option" if kind == "external_select" else "initial_options"
            initial = element.get(key)
            for i, option in enumerate(initial if isinstance(initial, list) else [initial] if initial else []):
                self.option(option, f"{path}/{key}" + (f"/{i}" if isinstance(initial, list) else ""), plain_only=True)
            mql = element.get("min_query_length")
            if mql is not None and (not isinstance(mql, int) or isinstance(mql, bool) or mql < 0):
                self.add(path + "/min_query_length", "must be a non-negative integer")
        elif kind == "plain_text_input":
            lo: Any = element.get("min_length")
            hi: Any = element.get("max_length")
            if lo is not None and (not _is_int(lo) or not 0 <= lo <= 3000):
                self.add(path + "/min_length", "must be an integer from 0 to 3000")
            if hi is not None and (not _is_int(hi) or not 1 <= hi <= 3000):
                self.add(path + "/max_length", "must be an integer from 1 to 3000")
            if _is_int(lo) and _is_int(hi) and lo > hi:
                self.add(path, f"min_length {lo} is greater than max_length {hi}")
            initial = element.get("initial_value")
            if initial is not None:
                self.string(initial, path + "/initial_value", max_len=hi if _is_int(hi) else 3000)
        elif kind == "number_input":
            if not isinstance(element.get("is_decimal_allowed"), bool):
                self.add(path + "/is_decimal_allowed", "is required (true or false)")
            for key in ("initial_value", "min_value", "max_value"):
                if key in element and not isinstance(element[key], str):
                    self.add(f"{path}/{key}", f"must be a string, not {_kind(element[key])}")
        elif kind == "datepicker":
            initial = element.get("initial_date")
            if initial is not None and not (isinstance(initial, str) and _DATE.match(initial)):
                self.add(path + "/initial_date", "must be YYYY-MM-DD")
        elif kind == "image":
            if not element.get("image_url") and not element.get("slack_file"):
                self.add(path, "an image element needs image_url or slack_file")
            self.string(element.get("alt_text"), path + "/alt_text", max_len=2000, required=True, min_len=1)

    # -- blocks ----------------------------------------------------------------------------------

    def block(self, block: Any, path: str) -> None:
        if not isinstance(block, dict):
            self.add(path, f"a block must be an object, not {_kind(block)}")
            return
        kind = block.get("type")
        if kind not in KNOWN_BLOCK_TYPES:
            self.add(path + "/type", f"unknown block type {kind!r}")
            return
        block_id = block.get("block_id")
        if block_id is not None:
            self.string(block_id, path + "/block_id", max_len=255, min_len=1)
            if isinstance(block_id, str):
                if block_id in self.block_ids:
                    self.add(
                        path + "/block_id",
                        f"duplicate block_id {block_id!r} (also {self.block_ids[block_id]})",
                    )
                self.block_ids.setdefault(block_id, path)

        if kind == "section":
            if "text" not in block and "fields" not in block:
                self.add(path, "a section needs text or fields")
            if "text" in block:
                self.text(block["text"], path + "/text", max_len=3000)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    self.add(path + "/fields", "must be a list of 1 to 10 text objects")
                else:
                    for i, field in enumerate(fields):
                        self.text(field, f"{path}/fields/{i}", max_len=2000)
            if "accessory" in block:
                self.element(block["accessory"], path + "/accessory", SECTION_ACCESSORIES, "a section accessory")
        elif kind == "header":
            self.text(block.get("text"), path + "/text", max_len=150, plain_only=True)
        elif kind == "image":
            if not block.get("image_url") and not block.get("slack_file"):
                self.add(path, "an image block needs image_url or slack_file")
            self.string(block.get("alt_text"), path + "/alt_text", max_len=2000, required=True, min_len=1)
            self.text(block.get("title"), path + "/title", max_len=2000, plain_only=True, required=False)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                self.add(path + "/elements", "must be a list of 1 to 25 elements")
                return
            action_ids: set[str] = set()
            for i, element in enumerate(elements):
                self.element(element, f"{path}/elements/{i}", ACTIONS_ELEMENTS, "an actions block")
                action_id = element.get("action_id") if isinstance(element, dict) else None
                if isinstance(action_id, str):
                    if action_id in action_ids:
                        self.add(f"{path}/elements/{i}/action_id", f"duplicate action_id {action_id!r} in block")
                    action_ids.add(action_id)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                self.add(path + "/elements", "must be a list of 1 to 10 elements")
                return
            for i, element in enumerate(elements):
                epath = f"{path}/elements/{i}"
                if isinstance(element, dict) and element.get("type") == "image":
                    self.element(element, epath, {"image"}, "a context block")
                else:
                    self.text(element, epath)
        elif kind == "input":
            self.text(block.get("label"), path + "/label", max_len=2000, plain_only=True)
            self.text(block.get("hint"), path + "/hint", max_len=2000, plain_only=True, required=False)
            for flag in ("optional", "dispatch_action"):
                if flag in block and not isinstance(block[flag], bool):
                    self.add(f"{path}/{flag}", "must be true or false")
            element = block.get("element")
            if element is None:
                self.add(path + "/element", "is required")
                return
            self.element(element, path + "/element", INPUT_ELEMENTS, "an input block")
            if self.surface != "message":
                # Slack generates random ids otherwise, and view_submission values become unreadable.
                if block_id is None:
                    self.add(path + "/block_id", "an input block in a view must set block_id explicitly")
                if isinstance(element, dict) and element.get("action_id") is None:
                    self.add(path + "/element/action_id", "an input element in a view must set action_id")


def validate_blocks(blocks: list[dict[str, Any]], *, surface: Surface) -> list[str]:
    """Return every problem Slack would reject in `blocks` on `surface` (empty list = valid)."""
    if surface not in MAX_BLOCKS:
        raise ValueError(f"surface must be one of {sorted(MAX_BLOCKS)}, not {surface!r}")
    if not isinstance(blocks, list):
        return [f"/blocks: must be a list of blocks, not {_kind(blocks)}"]
    checker = _Checker(surface)
    limit = MAX_BLOCKS[surface]
    if len(blocks) > limit:
        checker.add("/blocks", f"a {surface} may have at most {limit} blocks (got {len(blocks)})")
    for i, block in enumerate(blocks):
        path = f"/blocks/{i}"
        before = len(checker.problems)
        checker.block(block, path)
        if len(checker.problems) == before:
            checker.problems += _sdk_problems(block, path)
    return checker.problems


def validate_view(view: dict[str, Any]) -> list[str]:
    """Return every problem Slack would reject in a modal or Home tab view (empty list = valid)."""
    if not isinstance(view, dict):
        return [f"/view: must be an object, not {_kind(view)}"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        return [f"/view/type: must be 'modal' or 'home', not {kind!r}"]
    checker = _Checker(kind)
    for key in sorted(view.keys() - _VIEW_KEYS[kind]):
        checker.add(f"/view/{key}", f"field {key!r} is not allowed in a {kind} view")
    if kind == "modal":
        checker.text(view.get("title"), "/view/title", max_len=24, plain_only=True)
        checker.text(view.get("submit"), "/view/submit", max_len=24, plain_only=True, required=False)
        checker.text(view.get("close"), "/view/close", max_len=24, plain_only=True, required=False)
    checker.string(view.get("private_metadata"), "/view/private_metadata", max_len=3000)
    checker.string(view.get("callback_id"), "/view/callback_id", max_len=255)
    checker.string(view.get("external_id"), "/view/external_id", max_len=255)
    problems = checker.problems
    blocks = view.get("blocks")
    if blocks is None:
        problems.append("/view/blocks: is required")
    else:
        problems += ["/view" + p for p in validate_blocks(blocks, surface=kind)]
        has_input = isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
        if kind == "modal" and has_input and view.get("submit") is None:
            problems.append("/view/submit: a modal with input blocks needs a submit button")
    size = len(json.dumps(view, ensure_ascii=False).encode())
    if size > MAX_VIEW_BYTES:
        problems.append(f"/view: {size} bytes is over Slack's {MAX_VIEW_BYTES}-byte view limit (view_too_large)")
    return problems


def validate_message(text: str | None, blocks: list[dict[str, Any]] | None) -> list[str]:
    """Return problems with a message's `text` and `blocks` (empty list = valid)."""
    problems: list[str] = []
    if not text and not blocks:
        problems.append("/text: a message needs text or blocks (no_text)")
    if text is not None:
        if not isinstance(text, str):
            problems.append(f"/text: must be a string, not {_kind(text)}")
        elif len(text) > MAX_MESSAGE_TEXT:
            problems.append(f"/text: {len(text)} characters is over {MAX_MESSAGE_TEXT} (msg_too_long)")
    if blocks:
        problems += validate_blocks(blocks, surface="message")
    return problems


def assert_valid_blocks(blocks: list[dict[str, Any]], *, surface: Surface) -> None:
    _raise_if(validate_blocks(blocks, surface=surface), f"invalid {surface} blocks")


def assert_valid_view(view: dict[str, Any]) -> None:
    _raise_if(validate_view(view), "invalid view")


def assert_valid_message(text: str | None, blocks: list[dict[str, Any]] | None) -> None:
    _raise_if(validate_message(text, blocks), "invalid message")


# -- helpers -------------------------------------------------------------------------------------


def _raise_if(problems: list[str], what: str) -> None:
    if problems:
        raise AssertionError(f"{what}:\n  " + "\n  ".join(problems))


def _sdk_problems(block: dict[str, Any], path: str) -> list[str]:
    """Deep-validate one block with slack_sdk's models and report anything they could not represent."""
    try:
        parsed = Block.parse(copy.deepcopy(block))
        if parsed is None:
            return [f"{path}: slack_sdk does not know this block"]
        out = parsed.to_dict()
    except SlackObjectFormationError as e:
        return [f"{path}: {e}"]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        return [f"{path}: malformed {block.get('type')} block ({type(e).__name__}: {e})"]
    return _dropped(block, out, path)


def _dropped(given: Any, kept: Any, path: str) -> list[str]:
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [f"{path}: not understood by slack_sdk"]
        problems = []
        for key, value in given.items():
            if key not in kept:
                if not _is_empty(value):
                    problems.append(f"{path}/{key}: unknown field {key!r}")
            else:
                problems += _dropped(value, kept[key], f"{path}/{key}")
        return problems
    if isinstance(given, list) and isinstance(kept, list):
        if len(given) != len(kept):
            return [f"{path}: slack_sdk kept {len(kept)} of {len(given)} items"]
        problems = []
        for i, (a, b) in enumerate(zip(given, kept, strict=True)):
            if b is None and a is not None:
                problems.append(f"{path}/{i}: unknown element {a.get('type') if isinstance(a, dict) else a!r}")
            else:
                problems += _dropped(a, b, f"{path}/{i}")
        return problems
    return []


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _same_option(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("value") == b.get("value") and _option_label(a) == _option_label(b)


def _option_label(option: dict[str, Any]) -> Any:
    text = option.get("text")
    return text.get("text") if isinstance(text, dict) else text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
