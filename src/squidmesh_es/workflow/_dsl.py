"""The authoring DSL: a workflow is a class whose body declares its steps and routes.

Example:
    class PaymentRecovery(Workflow):
        payload = RecoveryRequest
        triggers = [manual("payment_recovery")]

        load_invoice = step(LoadInvoice)
        notify_customer = step(NotifyCustomer, compensatable=False)

        transitions = [
            transition(load_invoice, to=notify_customer),
            transition(notify_customer, to=COMPLETE),
        ]

The attribute name is the step name, and declaration order is kept. Steps are referenced by
their declarations, never by strings, so an IDE completes them and a typo fails at once.
The class is validated when it is defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, TypeVar

from pydantic import BaseModel

from squidmesh_es.errors import Issue, UnknownStep, WorkflowValidationError
from squidmesh_es.workflow._declarations import StepDeclaration, TransitionDeclaration
from squidmesh_es.workflow._elements import StepSpec, TriggerSpec
from squidmesh_es.workflow._json import JSONObject
from squidmesh_es.workflow._payload import NoPayload, PayloadContract, fields_from_model
from squidmesh_es.workflow._spec import WorkflowSpec
from squidmesh_es.workflow._steps import Step, is_declared_ref
from squidmesh_es.workflow._validation import spec_issues

_T = TypeVar("_T")

_RESERVED = frozenset(
    {"name", "version", "payload", "triggers", "transitions", "index_keys", "erasable"}
)


class Workflow:
    """Base of class-declared workflows: subclass it and declare the workflow in the body.

    Class attributes: `name` (default: the class's qualified name), `version` (an operator
    label), `payload` (a pydantic model; default: no fields), `triggers` and `transitions`.
    Every other attribute bound to a step declaration is a step. Pass ``abstract=True`` to
    declare a base class that is not a workflow itself.
    """

    name: ClassVar[str]
    version: ClassVar[str | None] = None
    payload: ClassVar[type[BaseModel]] = NoPayload
    triggers: ClassVar[Sequence[TriggerSpec]] = ()
    transitions: ClassVar[Sequence[TransitionDeclaration]] = ()
    index_keys: ClassVar[Sequence[str]] = ()
    """Payload fields operators look runs up by (``list_runs(index={"invoice_id": ...})``)."""
    erasable: ClassVar[bool] = False
    """Its runs hold personal data that may have to be erased: their payload, step inputs and
    outputs, manual decisions and dynamic work are stored encrypted under a key of their own,
    and ``SquidMesh.forget_run`` destroys it (docs/operations.md, "Security")."""

    _spec: ClassVar[WorkflowSpec | None] = None
    _contract: ClassVar[PayloadContract]
    _step_classes: ClassVar[dict[str, type[Step]]]
    _steps_by_ref: ClassVar[dict[str, str]]
    _step_names: ClassVar[frozenset[str]]
    _compensation_classes: ClassVar[dict[str, type[Step]]]

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: object) -> None:
        """Build and validate the workflow's spec when the class is defined.

        Raises:
            WorkflowValidationError: the declaration breaks a rule; every issue is listed.
        """
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__qualname__
        cls._spec = None
        if abstract:
            return
        declarations = _declarations(cls)
        spec, issues = _build(cls, declarations)
        if issues or spec is None:
            details = "; ".join(issue.message for issue in issues)
            raise WorkflowValidationError(f"workflow {cls.name!r} is invalid ({details})", issues)
        cls._spec = spec
        cls._contract = PayloadContract.from_model(cls.name, cls.payload)
        cls._step_classes = {
            name: d.implementation for name, d in declarations.items() if d.implementation
        }
        cls._step_names = frozenset(spec.step_names)
        cls._steps_by_ref = {
            str(s.ref): s.name
            for s in spec.steps
            if s.name in cls._step_classes and is_declared_ref(s.ref)
        }
        cls._compensation_classes = {
            name: d.compensate for name, d in declarations.items() if d.compensate
        }

    @classmethod
    def to_spec(cls) -> WorkflowSpec:
        """The workflow's validated spec, built once when the class was defined.

        Raises:
            TypeError: the class was declared ``abstract=True``.
        """
        if cls._spec is None:
            raise TypeError(f"{cls.__qualname__} is abstract and has no spec")
        return cls._spec

    @classmethod
    def resolve_trigger(cls, trigger: str | None = None) -> TriggerSpec:
        """The trigger called `trigger`; without a name, the only trigger.

        Raises:
            InvalidTrigger: no such trigger, or no name while there are several.
        """
        return cls.to_spec().trigger(trigger)

    @classmethod
    def validate_payload(
        cls, payload: object, trigger: str | None = None, *, now: datetime | None = None
    ) -> JSONObject:
        """The run input for `payload`: checked by the workflow's pydantic model, JSON-safe.

        Defaults are applied, and keys the model does not declare are refused unless the
        model sets its own ``extra`` policy. A `today_iso8601` default takes its date from
        `now`, the run's creation time, when given.

        Raises:
            InvalidTrigger: `trigger` is not declared, or is needed and missing.
            PayloadValidationError: the payload breaks the contract; one issue per problem.
        """
        cls.resolve_trigger(trigger)
        return cls._contract.validate(payload, now=now)

    @classmethod
    def step_class(cls, step: str) -> type[Step]:
        """The `Step` class that runs custom step `step`.

        Raises:
            UnknownStep: no custom step has that name.
        """
        cls.to_spec()
        try:
            return cls._step_classes[step]
        except KeyError:
            raise UnknownStep(workflow=cls.name, step=step) from None

    @classmethod
    def has_step(cls, step: str) -> bool:
        """Whether this code declares a step called ``step`` (custom or built-in)."""
        cls.to_spec()
        return step in cls._step_names

    @classmethod
    def implementation_of(cls, step: StepSpec) -> type[Step] | None:
        """The `Step` class this code has for ``step`` of any spec, by its stable identity.

        A step with a declared ref (``step(..., ref=...)``) is found by that ref, else by
        its name; a name that is not a custom step here has no code. The class's module
        plays no part, so a run started under an earlier deploy runs today's code.
        """
        cls.to_spec()
        if is_declared_ref(step.ref):
            name = cls._steps_by_ref.get(str(step.ref))
            if name is not None:
                return cls._step_classes[name]
        return cls._step_classes.get(step.name)

    @classmethod
    def compensation_class(cls, step: str) -> type[Step] | None:
        """The `Step` class that compensates `step`, or `None` when it declares none.

        A step this code no longer declares has no compensation here.
        """
        cls.to_spec()
        return cls._compensation_classes.get(step)


def _declarations(cls: type[Workflow]) -> dict[str, StepDeclaration]:
    """Step declarations from the class and its bases, in declaration order."""
    found: dict[str, StepDeclaration] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, StepDeclaration):
                found[name] = value
            elif name in found:
                del found[name]
    return found


def _build(
    cls: type[Workflow], declarations: dict[str, StepDeclaration]
) -> tuple[WorkflowSpec | None, list[Issue]]:
    issues: list[Issue] = []
    names: dict[int, str] = {}
    for index, (name, declaration) in enumerate(declarations.items()):
        if name in _RESERVED:
            issues.append(
                Issue(("steps", index, "name"), "invalid_step_name", f"{name!r} is reserved")
            )
        if id(declaration) in names:
            issues.append(
                Issue(
                    ("steps", index),
                    "invalid_step",
                    f"{name!r} is the same declaration as {names[id(declaration)]!r}",
                )
            )
        names.setdefault(id(declaration), name)
    payload_model = cls.payload
    if isinstance(payload_model, type) and issubclass(payload_model, BaseModel):
        fields, payload_issues = fields_from_model(payload_model)
    else:
        message = "payload must be a pydantic model class"
        fields, payload_issues = (), [Issue(("payload",), "invalid_payload_contract", message)]
    issues.extend(payload_issues)
    if payload_issues:
        fields = ()  # still check the rest, without payload fields whose indices would shift
    malformed: list[Issue] = []
    triggers = _items(cls.triggers, "triggers", TriggerSpec, malformed)
    transitions = _items(cls.transitions, "transitions", TransitionDeclaration, malformed)
    if malformed:
        return None, [*issues, *malformed]
    data: JSONObject = {
        "workflow": cls.name,
        "version": cls.version,
        "triggers": [t.to_dict() for t in triggers],
        "payload": [f.to_dict() for f in fields],
        "steps": [d.to_step_spec(n, names).to_dict() for n, d in declarations.items()],
        "transitions": [t.to_transition_spec(names).to_dict() for t in transitions],
    }
    try:
        spec = WorkflowSpec.from_dict(data)
    except WorkflowValidationError as exc:
        return None, [*issues, *exc.issues]
    issues.extend(spec_issues(spec))
    return (None if issues else spec), issues


def _items(value: object, key: str, kind: type[_T], issues: list[Issue]) -> list[_T]:
    """The items of class attribute `key`, each checked to be a `kind`."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        issues.append(Issue((key,), "invalid_collection", f"{key} must be a list"))
        return []
    for index, item in enumerate(value):
        if not isinstance(item, kind):
            message = f"{key} must hold {kind.__name__}s, got {item!r}"
            issues.append(Issue((key, index), f"invalid_{key[:-1]}", message))
    return list(value)
