from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSloStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SloWindow(_message.Message):
    __slots__ = ("window", "sli", "burn_rate", "total_events", "good_events")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    SLI_FIELD_NUMBER: _ClassVar[int]
    BURN_RATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EVENTS_FIELD_NUMBER: _ClassVar[int]
    GOOD_EVENTS_FIELD_NUMBER: _ClassVar[int]
    window: str
    sli: float
    burn_rate: float
    total_events: float
    good_events: float
    def __init__(self, window: _Optional[str] = ..., sli: _Optional[float] = ..., burn_rate: _Optional[float] = ..., total_events: _Optional[float] = ..., good_events: _Optional[float] = ...) -> None: ...

class SloStatus(_message.Message):
    __slots__ = ("name", "description", "objective", "period", "windows", "error_budget_remaining", "page_alert", "ticket_alert")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    ERROR_BUDGET_REMAINING_FIELD_NUMBER: _ClassVar[int]
    PAGE_ALERT_FIELD_NUMBER: _ClassVar[int]
    TICKET_ALERT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    objective: float
    period: str
    windows: _containers.RepeatedCompositeFieldContainer[SloWindow]
    error_budget_remaining: float
    page_alert: bool
    ticket_alert: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., objective: _Optional[float] = ..., period: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[SloWindow, _Mapping]]] = ..., error_budget_remaining: _Optional[float] = ..., page_alert: bool = ..., ticket_alert: bool = ...) -> None: ...

class GetSloStatusResponse(_message.Message):
    __slots__ = ("slos",)
    SLOS_FIELD_NUMBER: _ClassVar[int]
    slos: _containers.RepeatedCompositeFieldContainer[SloStatus]
    def __init__(self, slos: _Optional[_Iterable[_Union[SloStatus, _Mapping]]] = ...) -> None: ...

class GetTargetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ScrapeTarget(_message.Message):
    __slots__ = ("service", "instance", "up", "last_scrape_duration_seconds", "last_error")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    LAST_SCRAPE_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance: str
    up: bool
    last_scrape_duration_seconds: float
    last_error: str
    def __init__(self, service: _Optional[str] = ..., instance: _Optional[str] = ..., up: bool = ..., last_scrape_duration_seconds: _Optional[float] = ..., last_error: _Optional[str] = ...) -> None: ...

class GetTargetsResponse(_message.Message):
    __slots__ = ("targets",)
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[ScrapeTarget]
    def __init__(self, targets: _Optional[_Iterable[_Union[ScrapeTarget, _Mapping]]] = ...) -> None: ...
