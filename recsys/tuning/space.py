"""Search-space files: load ``searchspaces/<model>.yaml``, validate it, convert it to Ray Tune.

A search-space file is data. It has two sections::

    budget:                 # ASHA's budget for this model (overridable on the command line)
      max_epochs: 30        # ASHA's max_t
      grace_period: 5       # epochs every trial gets before ASHA may stop it
      reduction_factor: 2   # ASHA keeps the best 1/reduction_factor at each rung
      eval_every: 1         # validation (and a report to Tune) every this many epochs
      num_samples: 8        # trials
    params:                 # one entry per field of the model's config dataclass
      dim: 64                         # a fixed value
      layers: {randint: [1, 4]}       # integers 1..4, both ends included
      lr: {loguniform: [1.0e-3, 1.0e-2]}
      batch_size: {choice: [1024, 2048, 4096]}
      dropout: {uniform: [0.0, 0.5]}
      pool_size: {qrandint: [50, 200, 50]}   # low, high (included), step
      beta_max: {quniform: [0.1, 0.5, 0.1]}
      hidden: {grid: [256, 512]}      # every value tried (Ray Tune's grid_search)

Fields the file does not name keep their dataclass defaults. The file stem is the model's name.

A ``grid`` is enumerated, not drawn: with grid parameters, a model's search runs every point of
their product (in file order) ``num_samples`` times, each time with the other searched
parameters drawn at random: ``num_samples`` x grid points trials, as Ray Tune multiplies them
(``--num-samples`` and ``--smoke`` set the multiplier). When every searched parameter is a grid
one, the grid runs once whatever ``num_samples`` says: a repeat would be the same config with
the same seed. The defaults trial (below) is one of the grid's trials: it takes the place of the
first turn of the grid point the defaults lie on. ``--search optuna`` refuses a grid (TPE draws
from distributions, it does not enumerate): write ``{choice: [...]}`` for Optuna to sample from.

Every search starts with the model's defaults: its first trial takes the dataclass default of
each searched parameter (and the file's fixed values), and ASHA never stops that trial, so the
chosen config is never worse on validation than the defaults trained for the same budget. A
default must therefore lie inside its parameter's distribution; the file fails to load if not.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recsys.errors import RecsysError

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint", "qrandint", "quniform")
_LISTS = ("choice", "grid")  # distributions over a list of values
BUDGET_KEYS = ("max_epochs", "grace_period", "reduction_factor", "eval_every", "num_samples")
_INT_DISTRIBUTIONS = ("randint", "qrandint")
_FLOAT_DISTRIBUTIONS = ("uniform", "loguniform", "quniform")


def default_space_dir() -> Path:
    """``$RECSYS_SEARCHSPACES``, else ``searchspaces/`` at the repository root."""
    env = os.environ.get("RECSYS_SEARCHSPACES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "searchspaces"


@dataclass(frozen=True)
class Budget:
    """How much search a model gets (see the module docstring)."""

    max_epochs: int
    grace_period: int
    reduction_factor: int
    eval_every: int
    num_samples: int

    def override(self, *, max_epochs: int | None = None, num_samples: int | None = None) -> Budget:
        """A copy with command-line overrides; the grace period is clipped to ``max_epochs``."""
        max_t = self.max_epochs if max_epochs is None else max_epochs
        return Budget(
            max_epochs=max_t,
            grace_period=min(self.grace_period, max_t),
            reduction_factor=self.reduction_factor,
            eval_every=min(self.eval_every, max_t),
            num_samples=self.num_samples if num_samples is None else num_samples,
        )


@dataclass(frozen=True)
class Param:
    """One parameter: a fixed ``value`` (``dist`` is None) or a distribution with its ``args``.

    ``args`` are ``(values,)`` for ``choice`` and ``grid``, ``(low, high)`` for ``uniform``/
    ``loguniform``/``randint`` and ``(low, high, q)`` for ``qrandint``/``quniform``; integer
    bounds include ``high``.
    """

    name: str
    dist: str | None = None
    args: tuple = ()
    value: Any = None

    @property
    def fixed(self) -> bool:
        return self.dist is None

    def contains(self, value: Any) -> bool:
        """Whether the distribution can draw ``value`` (a fixed parameter: equals it)."""
        if self.fixed:
            return value == self.value
        if self.dist in _LISTS:
            return value in self.args[0]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        low, high = self.args[0], self.args[1]
        if not low <= value <= high:
            return False
        if self.dist in ("qrandint", "quniform"):
            steps = (value - low) / self.args[2]
            return math.isclose(steps, round(steps), abs_tol=1e-9)
        if self.dist == "randint":
            return float(value).is_integer()
        return True


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: the model, where it came from, its parameters and budget."""

    model: str
    path: Path
    params: dict[str, Param]
    budget: Budget
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def first_trial(self) -> dict[str, Any]:
        """The searched parameters of the search's first trial: the model's defaults."""
        return dict(self.defaults)

    def fixed_values(self) -> dict[str, Any]:
        return {name: p.value for name, p in self.params.items() if p.fixed}

    def searched(self) -> list[str]:
        """Names of the parameters that are sampled, in file order."""
        return [name for name, p in self.params.items() if not p.fixed]

    def grid(self) -> dict[str, tuple]:
        """The ``grid`` parameters and their values, in file order."""
        return {name: p.args[0] for name, p in self.params.items() if p.dist == "grid"}

    def grid_points(self) -> int:
        """How many points the grid parameters' product has (1 without any)."""
        return math.prod(len(values) for values in self.grid().values())

    def trials(self, num_samples: int) -> int:
        """The trials a search of ``num_samples`` runs: one without anything searched; each grid
        point ``num_samples`` times, or once when only grid parameters are searched (a repeat
        would be the very same trial)."""
        if not self.searched():
            return 1
        drawn = len(self.searched()) > len(self.grid())
        return self.grid_points() * (num_samples if drawn else 1)


MAX_SPACE_BYTES = 64 * 1024


class _SpaceLoader(yaml.SafeLoader):
    """Safe YAML without what a space file never needs and a hostile or mistaken one abuses:
    aliases (an alias bomb expands to gigabytes) and duplicate keys (the later would win)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a search space", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_space(
    model: str, space_dir: str | Path | None = None, config_cls: type | None = None
) -> SearchSpace:
    """Loads and validates ``<space_dir>/<model>.yaml`` against the model's config dataclass.

    Args:
        model: the model's name, also the file stem.
        space_dir: folder of the search-space files (default :func:`default_space_dir`).
        config_cls: the config dataclass (default ``recsys.models.get_spec(model).config_cls``).

    Returns:
        The validated :class:`SearchSpace`.

    Raises:
        RecsysError: missing or malformed file, unknown parameter, bad distribution, bad bounds,
            bad budget; the message names the file, the parameter and the fix.
    """
    space_dir = Path(space_dir) if space_dir is not None else default_space_dir()
    path = space_dir / f"{model}.yaml"
    if config_cls is None:
        from recsys.models import get_spec

        config_cls = get_spec(model).config_cls
    if not path.is_file():
        raise RecsysError(
            f"{path}: no search space for model {model!r}; create it (see "
            f"{default_space_dir()}/popularity.yaml for the format) or pass --space-dir"
        )
    if path.stat().st_size > MAX_SPACE_BYTES:
        raise RecsysError(
            f"{path}: {path.stat().st_size} bytes, more than a search space needs (at most "
            f"{MAX_SPACE_BYTES // 1024} KiB); is it the right file?"
        )
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SpaceLoader)  # noqa: S506
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1]
        raise RecsysError(
            f"{path}: not UTF-8 text (byte {exc.start} is {bad!r}); save the file as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise RecsysError(f"{path}: malformed YAML{where}: {problem}; fix the syntax") from None
    return parse_space(model, raw, config_cls, path)


def parse_space(model: str, raw: Any, config_cls: type, path: Path) -> SearchSpace:
    """Validates the parsed YAML ``raw`` of ``path`` (see :func:`load_space`)."""
    if not isinstance(raw, dict):
        raise RecsysError(
            f"{path}: expected a mapping with 'budget' and 'params' sections, got "
            f"{type(raw).__name__}; see the format in recsys/tuning/space.py"
        )
    unknown = sorted(set(raw) - {"budget", "params"})
    if unknown:
        raise RecsysError(
            f"{path}: unknown section {unknown[0]!r}; a search-space file has only "
            f"'budget' and 'params'"
        )
    budget = _parse_budget(raw.get("budget"), path)
    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        raise RecsysError(f"{path}: 'params' must be a mapping of parameter name to value")
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # unresolvable annotations: skip the type checks, keep the name checks
        hints = {}
    params = {}
    for name, spec in params_raw.items():
        if name not in fields:
            raise RecsysError(
                f"{path}: unknown parameter {name!r} for model {model!r}; valid parameters: "
                f"{', '.join(fields) or '(none)'}; remove it or fix its name"
            )
        params[name] = _parse_param(str(name), spec, hints.get(name), path)
    return SearchSpace(
        model=model,
        path=path,
        params=params,
        budget=budget,
        defaults=_defaults(params, fields, path),
    )


def _defaults(params: dict[str, Param], fields: dict[str, Any], path: Path) -> dict[str, Any]:
    """The model's defaults of the searched parameters, each checked to lie in its distribution."""
    out = {}
    for name, p in params.items():
        if p.fixed:
            continue
        f = fields[name]
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            raise RecsysError(
                f"{path}: parameter {name!r} has no default in the model's config, and every "
                f"search starts with the defaults; fix it in the file or give the field a default"
            )
        if not p.contains(value):
            shown = list(p.args[0]) if p.dist in _LISTS else list(p.args)
            raise RecsysError(
                f"{path}: parameter {name!r}: the model's default {value!r} is outside "
                f"{p.dist} {shown}; every search starts with the defaults, so widen the "
                f"distribution to include {value!r}"
            )
        out[name] = value
    return out


def _parse_budget(raw: Any, path: Path) -> Budget:
    if not isinstance(raw, dict):
        raise RecsysError(
            f"{path}: missing 'budget' section; add budget: with {', '.join(BUDGET_KEYS)}"
        )
    missing = [k for k in BUDGET_KEYS if k not in raw]
    extra = sorted(set(raw) - set(BUDGET_KEYS))
    if extra:
        raise RecsysError(
            f"{path}: unknown budget key {extra[0]!r}; budget keys are {', '.join(BUDGET_KEYS)}"
        )
    if missing:
        raise RecsysError(f"{path}: budget is missing {missing[0]!r}; add it (a positive integer)")
    values = {}
    for key in BUDGET_KEYS:
        v = raw[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise RecsysError(f"{path}: budget {key}={v!r} must be a positive integer")
        values[key] = v
    if values["reduction_factor"] < 2:
        raise RecsysError(f"{path}: budget reduction_factor must be at least 2")
    if values["grace_period"] > values["max_epochs"]:
        raise RecsysError(
            f"{path}: budget grace_period={values['grace_period']} exceeds "
            f"max_epochs={values['max_epochs']}; lower grace_period or raise max_epochs"
        )
    return Budget(**values)


def _number(value: Any, integer: bool) -> float | int | None:
    """``value`` as a number (PyYAML reads ``1e-3`` as a string), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if integer:
        return int(value) if float(value).is_integer() else None
    return float(value)


def _kind(hint: Any) -> str | None:
    """'int', 'float', 'bool' or 'str' for simple annotations (Optional[...] unwrapped)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    return {int: "int", float: "float", bool: "bool", str: "str"}.get(hint)


def _check_value(name: str, value: Any, kind: str | None, path: Path) -> Any:
    ok = {
        None: True,
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": _number(value, False) is not None,
        "str": isinstance(value, str),
    }[kind]
    if not ok:
        raise RecsysError(f"{path}: parameter {name!r}: {value!r} is not a valid {kind}")
    if kind == "float":
        value = _number(value, False)
    if _is_rate(name) and isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise RecsysError(
                f"{path}: parameter {name!r}: a learning rate must be positive, got {value!r}"
            )
    return value


def _is_rate(name: str) -> bool:
    return name == "lr" or name.endswith("_lr") or name.startswith("lr_") or "learning_rate" in name


def _parse_param(name: str, spec: Any, hint: Any, path: Path) -> Param:
    kind = _kind(hint)
    if not isinstance(spec, dict):
        return Param(name, value=_check_value(name, spec, kind, path))
    if len(spec) != 1:
        raise RecsysError(
            f"{path}: parameter {name!r}: a distribution is a one-key mapping such as "
            f"{{loguniform: [1.0e-4, 1.0e-2]}}; got {spec!r}"
        )
    dist, args = next(iter(spec.items()))
    if dist not in DISTRIBUTIONS:
        raise RecsysError(
            f"{path}: parameter {name!r}: unknown distribution {dist!r}; use one of "
            f"{', '.join(DISTRIBUTIONS)}"
        )
    if dist in _LISTS:
        if not isinstance(args, list) or not args:
            raise RecsysError(
                f"{path}: parameter {name!r}: {dist} needs a non-empty list, e.g. "
                f"{{{dist}: [32, 64]}}"
            )
        values = tuple(_check_value(name, v, kind, path) for v in args)
        if dist == "grid":
            twice = [v for i, v in enumerate(values) if v in values[:i]]
            if twice:
                raise RecsysError(
                    f"{path}: parameter {name!r}: grid lists {twice[0]!r} twice, which would "
                    f"run the same trials twice; give each value once"
                )
        return Param(name, dist, (values,))
    quantized = dist in ("qrandint", "quniform")
    arity = 3 if quantized else 2
    form = "[low, high, step]" if quantized else "[low, high]"
    if not isinstance(args, list) or len(args) != arity:
        raise RecsysError(f"{path}: parameter {name!r}: {dist} takes {form}, got {args!r}")
    integer = dist in _INT_DISTRIBUTIONS
    if kind in ("bool", "str") or (kind == "int" and not integer):
        fix = "choice" if kind in ("bool", "str") else "randint, qrandint or choice"
        raise RecsysError(
            f"{path}: parameter {name!r} is {'an' if kind == 'int' else 'a'} {kind}; {dist} "
            f"does not fit it, use {fix}"
        )
    nums = [_number(a, integer) for a in args]
    if any(n is None for n in nums):
        what = "integers" if integer else "numbers"
        raise RecsysError(f"{path}: parameter {name!r}: {dist} {form} must be {what}, got {args}")
    low, high = nums[0], nums[1]
    if low >= high:
        raise RecsysError(
            f"{path}: parameter {name!r}: {dist} low={low} must be below high={high}; swap or "
            f"widen the bounds"
        )
    if dist == "loguniform" and low <= 0:
        raise RecsysError(
            f"{path}: parameter {name!r}: loguniform needs low > 0, got {low}; use a small "
            f"positive lower bound such as 1.0e-6"
        )
    if _is_rate(name) and low <= 0:
        raise RecsysError(
            f"{path}: parameter {name!r}: a learning rate must be positive, got low={low}"
        )
    if quantized and nums[2] <= 0:
        raise RecsysError(f"{path}: parameter {name!r}: {dist} step must be positive")
    return Param(name, dist, tuple(nums))


def to_tune(space: SearchSpace) -> dict[str, Any]:
    """The Ray Tune ``param_space`` of a validated space: fixed values, Tune domains and
    ``tune.grid_search`` values (``{"grid_search": [...]}``, see :func:`is_grid`).

    Integer bounds in the files include ``high``; Ray's ``randint`` excludes it, hence ``+ 1``.
    """
    from ray import tune

    out: dict[str, Any] = {}
    for name, p in space.params.items():
        if p.fixed:
            out[name] = p.value
        elif p.dist == "choice":
            out[name] = tune.choice(list(p.args[0]))
        elif p.dist == "grid":
            out[name] = tune.grid_search(list(p.args[0]))
        elif p.dist == "uniform":
            out[name] = tune.uniform(*p.args)
        elif p.dist == "loguniform":
            out[name] = tune.loguniform(*p.args)
        elif p.dist == "randint":
            out[name] = tune.randint(p.args[0], p.args[1] + 1)
        elif p.dist == "qrandint":
            out[name] = tune.qrandint(*p.args)
        elif p.dist == "quniform":
            out[name] = tune.quniform(*p.args)
        else:  # parse_space admits nothing else
            raise AssertionError(p.dist)
    return out


def is_grid(value: Any) -> bool:
    """Whether a ``to_tune`` value is a ``tune.grid_search`` (a one-key ``grid_search`` dict)."""
    return isinstance(value, dict) and list(value) == ["grid_search"]
