from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MediaKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDIA_KIND_UNSPECIFIED: _ClassVar[MediaKind]
    MEDIA_KIND_IMAGE: _ClassVar[MediaKind]
    MEDIA_KIND_AUDIO: _ClassVar[MediaKind]
    MEDIA_KIND_VIDEO: _ClassVar[MediaKind]
    MEDIA_KIND_FILE: _ClassVar[MediaKind]
    MEDIA_KIND_TABLE: _ClassVar[MediaKind]
    MEDIA_KIND_HTML: _ClassVar[MediaKind]
    MEDIA_KIND_OBJECT3D: _ClassVar[MediaKind]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_FINISHED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CRASHED: _ClassVar[RunState]
    RUN_STATE_KILLED: _ClassVar[RunState]
    RUN_STATE_PREEMPTING: _ClassVar[RunState]
    RUN_STATE_PREEMPTED: _ClassVar[RunState]

class Resume(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESUME_UNSPECIFIED: _ClassVar[Resume]
    RESUME_NEVER: _ClassVar[Resume]
    RESUME_ALLOW: _ClassVar[Resume]
    RESUME_MUST: _ClassVar[Resume]
MEDIA_KIND_UNSPECIFIED: MediaKind
MEDIA_KIND_IMAGE: MediaKind
MEDIA_KIND_AUDIO: MediaKind
MEDIA_KIND_VIDEO: MediaKind
MEDIA_KIND_FILE: MediaKind
MEDIA_KIND_TABLE: MediaKind
MEDIA_KIND_HTML: MediaKind
MEDIA_KIND_OBJECT3D: MediaKind
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_FINISHED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CRASHED: RunState
RUN_STATE_KILLED: RunState
RUN_STATE_PREEMPTING: RunState
RUN_STATE_PREEMPTED: RunState
RESUME_UNSPECIFIED: Resume
RESUME_NEVER: Resume
RESUME_ALLOW: Resume
RESUME_MUST: Resume

class Value(_message.Message):
    __slots__ = ("double_value", "int_value", "bool_value", "string_value", "map_value", "list_value", "histogram", "media", "null_value")
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    double_value: float
    int_value: int
    bool_value: bool
    string_value: str
    map_value: MapValue
    list_value: ListValue
    histogram: Histogram
    media: Media
    null_value: bool
    def __init__(self, double_value: _Optional[float] = ..., int_value: _Optional[int] = ..., bool_value: _Optional[bool] = ..., string_value: _Optional[str] = ..., map_value: _Optional[_Union[MapValue, _Mapping]] = ..., list_value: _Optional[_Union[ListValue, _Mapping]] = ..., histogram: _Optional[_Union[Histogram, _Mapping]] = ..., media: _Optional[_Union[Media, _Mapping]] = ..., null_value: _Optional[bool] = ...) -> None: ...

class MapValue(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, Value]
    def __init__(self, fields: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class ListValue(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("bins", "counts", "values", "num_bins")
    BINS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NUM_BINS_FIELD_NUMBER: _ClassVar[int]
    bins: _containers.RepeatedScalarFieldContainer[float]
    counts: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    num_bins: int
    def __init__(self, bins: _Optional[_Iterable[float]] = ..., counts: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., num_bins: _Optional[int] = ...) -> None: ...

class Media(_message.Message):
    __slots__ = ("path", "kind", "caption", "sha256", "size", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: MediaKind
    caption: str
    sha256: str
    size: int
    extra: _containers.MessageMap[str, Value]
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[_Union[MediaKind, str]] = ..., caption: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., extra: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class ClientInfo(_message.Message):
    __slots__ = ("pid", "hostname", "boot_id")
    PID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    hostname: str
    boot_id: str
    def __init__(self, pid: _Optional[int] = ..., hostname: _Optional[str] = ..., boot_id: _Optional[str] = ...) -> None: ...

class InitRequest(_message.Message):
    __slots__ = ("id", "name", "entity", "project", "group", "job_type", "tags", "notes", "config", "resume", "client", "working_dir", "client_timeout", "system_metrics", "writer_id", "writer")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_METRICS_FIELD_NUMBER: _ClassVar[int]
    WRITER_ID_FIELD_NUMBER: _ClassVar[int]
    WRITER_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    entity: str
    project: str
    group: str
    job_type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    notes: str
    config: _containers.MessageMap[str, Value]
    resume: Resume
    client: ClientInfo
    working_dir: str
    client_timeout: float
    system_metrics: SystemMetricsSettings
    writer_id: str
    writer: WriterSettings
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., entity: _Optional[str] = ..., project: _Optional[str] = ..., group: _Optional[str] = ..., job_type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., notes: _Optional[str] = ..., config: _Optional[_Mapping[str, Value]] = ..., resume: _Optional[_Union[Resume, str]] = ..., client: _Optional[_Union[ClientInfo, _Mapping]] = ..., working_dir: _Optional[str] = ..., client_timeout: _Optional[float] = ..., system_metrics: _Optional[_Union[SystemMetricsSettings, _Mapping]] = ..., writer_id: _Optional[str] = ..., writer: _Optional[_Union[WriterSettings, _Mapping]] = ...) -> None: ...

class WriterSettings(_message.Message):
    __slots__ = ("shared", "label", "primary", "update_finish_state")
    SHARED_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FINISH_STATE_FIELD_NUMBER: _ClassVar[int]
    shared: bool
    label: str
    primary: bool
    update_finish_state: bool
    def __init__(self, shared: _Optional[bool] = ..., label: _Optional[str] = ..., primary: _Optional[bool] = ..., update_finish_state: _Optional[bool] = ...) -> None: ...

class WriterInfo(_message.Message):
    __slots__ = ("id", "label", "shared", "primary", "update_finish_state", "client", "state", "exit_code", "reason", "last_seq", "step", "joined", "ended")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FINISH_STATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    id: str
    label: str
    shared: bool
    primary: bool
    update_finish_state: bool
    client: ClientInfo
    state: RunState
    exit_code: int
    reason: str
    last_seq: int
    step: int
    joined: float
    ended: float
    def __init__(self, id: _Optional[str] = ..., label: _Optional[str] = ..., shared: _Optional[bool] = ..., primary: _Optional[bool] = ..., update_finish_state: _Optional[bool] = ..., client: _Optional[_Union[ClientInfo, _Mapping]] = ..., state: _Optional[_Union[RunState, str]] = ..., exit_code: _Optional[int] = ..., reason: _Optional[str] = ..., last_seq: _Optional[int] = ..., step: _Optional[int] = ..., joined: _Optional[float] = ..., ended: _Optional[float] = ...) -> None: ...

class SystemMetricsSettings(_message.Message):
    __slots__ = ("interval", "disabled", "per_cpu", "disk_paths")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    PER_CPU_FIELD_NUMBER: _ClassVar[int]
    DISK_PATHS_FIELD_NUMBER: _ClassVar[int]
    interval: float
    disabled: bool
    per_cpu: bool
    disk_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, interval: _Optional[float] = ..., disabled: _Optional[bool] = ..., per_cpu: _Optional[bool] = ..., disk_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class RunInfo(_message.Message):
    __slots__ = ("id", "name", "entity", "project", "group", "job_type", "tags", "notes", "state", "path", "dir", "start_time", "end_time", "exit_code", "step", "history_rows", "last_heartbeat", "resumed", "client_timeout", "stop_requested", "shared")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ROWS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    STOP_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    entity: str
    project: str
    group: str
    job_type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    notes: str
    state: RunState
    path: str
    dir: str
    start_time: float
    end_time: float
    exit_code: int
    step: int
    history_rows: int
    last_heartbeat: float
    resumed: bool
    client_timeout: float
    stop_requested: bool
    shared: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., entity: _Optional[str] = ..., project: _Optional[str] = ..., group: _Optional[str] = ..., job_type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., notes: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., path: _Optional[str] = ..., dir: _Optional[str] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., exit_code: _Optional[int] = ..., step: _Optional[int] = ..., history_rows: _Optional[int] = ..., last_heartbeat: _Optional[float] = ..., resumed: _Optional[bool] = ..., client_timeout: _Optional[float] = ..., stop_requested: _Optional[bool] = ..., shared: _Optional[bool] = ...) -> None: ...

class InitResponse(_message.Message):
    __slots__ = ("run", "resumed", "starting_step", "last_seq", "writer_id")
    RUN_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    STARTING_STEP_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    WRITER_ID_FIELD_NUMBER: _ClassVar[int]
    run: RunInfo
    resumed: bool
    starting_step: int
    last_seq: int
    writer_id: str
    def __init__(self, run: _Optional[_Union[RunInfo, _Mapping]] = ..., resumed: _Optional[bool] = ..., starting_step: _Optional[int] = ..., last_seq: _Optional[int] = ..., writer_id: _Optional[str] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("scalar_keys", "scalar_values", "values", "step", "commit", "timestamp")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    SCALAR_KEYS_FIELD_NUMBER: _ClassVar[int]
    SCALAR_VALUES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    scalar_keys: _containers.RepeatedScalarFieldContainer[int]
    scalar_values: _containers.RepeatedScalarFieldContainer[float]
    values: _containers.MessageMap[str, Value]
    step: int
    commit: bool
    timestamp: float
    def __init__(self, scalar_keys: _Optional[_Iterable[int]] = ..., scalar_values: _Optional[_Iterable[float]] = ..., values: _Optional[_Mapping[str, Value]] = ..., step: _Optional[int] = ..., commit: _Optional[bool] = ..., timestamp: _Optional[float] = ...) -> None: ...

class LogRequest(_message.Message):
    __slots__ = ("run_id", "data", "step", "commit", "seq", "timestamp", "writer_id")
    class DataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    WRITER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    data: _containers.MessageMap[str, Value]
    step: int
    commit: bool
    seq: int
    timestamp: float
    writer_id: str
    def __init__(self, run_id: _Optional[str] = ..., data: _Optional[_Mapping[str, Value]] = ..., step: _Optional[int] = ..., commit: _Optional[bool] = ..., seq: _Optional[int] = ..., timestamp: _Optional[float] = ..., writer_id: _Optional[str] = ...) -> None: ...

class DroppedRow(_message.Message):
    __slots__ = ("row_index", "step", "current_step", "reason")
    ROW_INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    row_index: int
    step: int
    current_step: int
    reason: str
    def __init__(self, row_index: _Optional[int] = ..., step: _Optional[int] = ..., current_step: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class LogResponse(_message.Message):
    __slots__ = ("step", "dropped")
    STEP_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    step: int
    dropped: _containers.RepeatedCompositeFieldContainer[DroppedRow]
    def __init__(self, step: _Optional[int] = ..., dropped: _Optional[_Iterable[_Union[DroppedRow, _Mapping]]] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("run_id", "seq", "keys", "rows", "writer_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    WRITER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    seq: int
    keys: _containers.RepeatedScalarFieldContainer[str]
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    writer_id: str
    def __init__(self, run_id: _Optional[str] = ..., seq: _Optional[int] = ..., keys: _Optional[_Iterable[str]] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., writer_id: _Optional[str] = ...) -> None: ...

class LogAck(_message.Message):
    __slots__ = ("run_id", "seq", "duplicate", "step", "dropped")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    seq: int
    duplicate: bool
    step: int
    dropped: _containers.RepeatedCompositeFieldContainer[DroppedRow]
    def __init__(self, run_id: _Optional[str] = ..., seq: _Optional[int] = ..., duplicate: _Optional[bool] = ..., step: _Optional[int] = ..., dropped: _Optional[_Iterable[_Union[DroppedRow, _Mapping]]] = ...) -> None: ...

class DefineMetricRequest(_message.Message):
    __slots__ = ("run_id", "name", "step_metric", "step_sync", "hidden", "summary", "goal", "overwrite")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_METRIC_FIELD_NUMBER: _ClassVar[int]
    STEP_SYNC_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    name: str
    step_metric: str
    step_sync: bool
    hidden: bool
    summary: str
    goal: str
    overwrite: bool
    def __init__(self, run_id: _Optional[str] = ..., name: _Optional[str] = ..., step_metric: _Optional[str] = ..., step_sync: _Optional[bool] = ..., hidden: _Optional[bool] = ..., summary: _Optional[str] = ..., goal: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class MetricDefinition(_message.Message):
    __slots__ = ("name", "step_metric", "step_sync", "hidden", "summary", "goal")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_METRIC_FIELD_NUMBER: _ClassVar[int]
    STEP_SYNC_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    step_metric: str
    step_sync: bool
    hidden: bool
    summary: _containers.RepeatedScalarFieldContainer[str]
    goal: str
    def __init__(self, name: _Optional[str] = ..., step_metric: _Optional[str] = ..., step_sync: _Optional[bool] = ..., hidden: _Optional[bool] = ..., summary: _Optional[_Iterable[str]] = ..., goal: _Optional[str] = ...) -> None: ...

class DefineMetricResponse(_message.Message):
    __slots__ = ("metric",)
    METRIC_FIELD_NUMBER: _ClassVar[int]
    metric: MetricDefinition
    def __init__(self, metric: _Optional[_Union[MetricDefinition, _Mapping]] = ...) -> None: ...

class UpdateConfigRequest(_message.Message):
    __slots__ = ("run_id", "config", "remove")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    config: _containers.MessageMap[str, Value]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., config: _Optional[_Mapping[str, Value]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateConfigResponse(_message.Message):
    __slots__ = ("config",)
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: _containers.MessageMap[str, Value]
    def __init__(self, config: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class UpdateSummaryRequest(_message.Message):
    __slots__ = ("run_id", "summary", "remove")
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    summary: _containers.MessageMap[str, Value]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., summary: _Optional[_Mapping[str, Value]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateSummaryResponse(_message.Message):
    __slots__ = ("summary",)
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    summary: _containers.MessageMap[str, Value]
    def __init__(self, summary: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class AlertRequest(_message.Message):
    __slots__ = ("run_id", "title", "text", "level", "wait_duration")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    WAIT_DURATION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    title: str
    text: str
    level: str
    wait_duration: float
    def __init__(self, run_id: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., level: _Optional[str] = ..., wait_duration: _Optional[float] = ...) -> None: ...

class AlertResponse(_message.Message):
    __slots__ = ("sent", "throttled", "throttled_until")
    SENT_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_FIELD_NUMBER: _ClassVar[int]
    THROTTLED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    sent: bool
    throttled: bool
    throttled_until: float
    def __init__(self, sent: _Optional[bool] = ..., throttled: _Optional[bool] = ..., throttled_until: _Optional[float] = ...) -> None: ...

class SaveFilesRequest(_message.Message):
    __slots__ = ("run_id", "glob", "base_path", "policy", "working_dir")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    GLOB_FIELD_NUMBER: _ClassVar[int]
    BASE_PATH_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    glob: str
    base_path: str
    policy: str
    working_dir: str
    def __init__(self, run_id: _Optional[str] = ..., glob: _Optional[str] = ..., base_path: _Optional[str] = ..., policy: _Optional[str] = ..., working_dir: _Optional[str] = ...) -> None: ...

class SaveFilesResponse(_message.Message):
    __slots__ = ("saved",)
    SAVED_FIELD_NUMBER: _ClassVar[int]
    saved: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, saved: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("run_id", "writer_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WRITER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    writer_id: str
    def __init__(self, run_id: _Optional[str] = ..., writer_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("state", "should_stop")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SHOULD_STOP_FIELD_NUMBER: _ClassVar[int]
    state: RunState
    should_stop: bool
    def __init__(self, state: _Optional[_Union[RunState, str]] = ..., should_stop: _Optional[bool] = ...) -> None: ...

class MarkPreemptingRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class MarkPreemptingResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: RunInfo
    def __init__(self, run: _Optional[_Union[RunInfo, _Mapping]] = ...) -> None: ...

class FinishRequest(_message.Message):
    __slots__ = ("run_id", "exit_code", "writer_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    WRITER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    exit_code: int
    writer_id: str
    def __init__(self, run_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., writer_id: _Optional[str] = ...) -> None: ...

class FinishResponse(_message.Message):
    __slots__ = ("run", "summary", "backends", "writer")
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    RUN_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    WRITER_FIELD_NUMBER: _ClassVar[int]
    run: RunInfo
    summary: _containers.MessageMap[str, Value]
    backends: _containers.RepeatedCompositeFieldContainer[BackendStatus]
    writer: WriterInfo
    def __init__(self, run: _Optional[_Union[RunInfo, _Mapping]] = ..., summary: _Optional[_Mapping[str, Value]] = ..., backends: _Optional[_Iterable[_Union[BackendStatus, _Mapping]]] = ..., writer: _Optional[_Union[WriterInfo, _Mapping]] = ...) -> None: ...

class BackendStatus(_message.Message):
    __slots__ = ("backend", "pending_records", "pending_bytes", "last_error", "last_success")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PENDING_RECORDS_FIELD_NUMBER: _ClassVar[int]
    PENDING_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    backend: str
    pending_records: int
    pending_bytes: int
    last_error: str
    last_success: float
    def __init__(self, backend: _Optional[str] = ..., pending_records: _Optional[int] = ..., pending_bytes: _Optional[int] = ..., last_error: _Optional[str] = ..., last_success: _Optional[float] = ...) -> None: ...

class StopRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class StopRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: RunInfo
    def __init__(self, run: _Optional[_Union[RunInfo, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run", "config", "summary", "metrics", "files", "backends", "system_metrics", "writers")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class SystemMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_METRICS_FIELD_NUMBER: _ClassVar[int]
    WRITERS_FIELD_NUMBER: _ClassVar[int]
    run: RunInfo
    config: _containers.MessageMap[str, Value]
    summary: _containers.MessageMap[str, Value]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricDefinition]
    files: _containers.RepeatedScalarFieldContainer[str]
    backends: _containers.RepeatedCompositeFieldContainer[BackendStatus]
    system_metrics: _containers.ScalarMap[str, float]
    writers: _containers.RepeatedCompositeFieldContainer[WriterInfo]
    def __init__(self, run: _Optional[_Union[RunInfo, _Mapping]] = ..., config: _Optional[_Mapping[str, Value]] = ..., summary: _Optional[_Mapping[str, Value]] = ..., metrics: _Optional[_Iterable[_Union[MetricDefinition, _Mapping]]] = ..., files: _Optional[_Iterable[str]] = ..., backends: _Optional[_Iterable[_Union[BackendStatus, _Mapping]]] = ..., system_metrics: _Optional[_Mapping[str, float]] = ..., writers: _Optional[_Iterable[_Union[WriterInfo, _Mapping]]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunInfo]
    def __init__(self, runs: _Optional[_Iterable[_Union[RunInfo, _Mapping]]] = ...) -> None: ...

class ScanHistoryRequest(_message.Message):
    __slots__ = ("run_id", "keys", "min_step", "max_step", "page_size")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    MIN_STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_STEP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    min_step: int
    max_step: int
    page_size: int
    def __init__(self, run_id: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., min_step: _Optional[int] = ..., max_step: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class HistoryRow(_message.Message):
    __slots__ = ("step", "values")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    step: int
    values: _containers.MessageMap[str, Value]
    def __init__(self, step: _Optional[int] = ..., values: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class ScanHistoryResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[HistoryRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[HistoryRow, _Mapping]]] = ...) -> None: ...

class Tags(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateRunRequest(_message.Message):
    __slots__ = ("run_id", "name", "notes", "tags", "group", "job_type", "config", "config_remove", "summary", "summary_remove")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONFIG_REMOVE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_REMOVE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    name: str
    notes: str
    tags: Tags
    group: str
    job_type: str
    config: _containers.MessageMap[str, Value]
    config_remove: _containers.RepeatedScalarFieldContainer[str]
    summary: _containers.MessageMap[str, Value]
    summary_remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., name: _Optional[str] = ..., notes: _Optional[str] = ..., tags: _Optional[_Union[Tags, _Mapping]] = ..., group: _Optional[str] = ..., job_type: _Optional[str] = ..., config: _Optional[_Mapping[str, Value]] = ..., config_remove: _Optional[_Iterable[str]] = ..., summary: _Optional[_Mapping[str, Value]] = ..., summary_remove: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateRunResponse(_message.Message):
    __slots__ = ("run", "config", "summary")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class SummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    RUN_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    run: RunInfo
    config: _containers.MessageMap[str, Value]
    summary: _containers.MessageMap[str, Value]
    def __init__(self, run: _Optional[_Union[RunInfo, _Mapping]] = ..., config: _Optional[_Mapping[str, Value]] = ..., summary: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id", "delete_artifacts")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DELETE_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    delete_artifacts: bool
    def __init__(self, run_id: _Optional[str] = ..., delete_artifacts: _Optional[bool] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("run_id", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class FileInfo(_message.Message):
    __slots__ = ("name", "size", "updated_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    updated_at: float
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., updated_at: _Optional[float] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files", "next_page_token")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[FileInfo]
    next_page_token: str
    def __init__(self, files: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReadFileRequest(_message.Message):
    __slots__ = ("run_id", "name", "offset")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    name: str
    offset: int
    def __init__(self, run_id: _Optional[str] = ..., name: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ReadFileResponse(_message.Message):
    __slots__ = ("data", "offset", "size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    size: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class ArtifactFile(_message.Message):
    __slots__ = ("path", "sha256", "md5", "size", "ref", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MD5_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    md5: str
    size: int
    ref: str
    extra: _containers.MessageMap[str, Value]
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., md5: _Optional[str] = ..., size: _Optional[int] = ..., ref: _Optional[str] = ..., extra: _Optional[_Mapping[str, Value]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("name", "type", "version", "version_index", "aliases", "description", "metadata", "digest", "size", "file_count", "logged_by", "used_by", "created_at", "manifest_path", "files", "distributed_id")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_INDEX_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LOGGED_BY_FIELD_NUMBER: _ClassVar[int]
    USED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_PATH_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTED_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    version: str
    version_index: int
    aliases: _containers.RepeatedScalarFieldContainer[str]
    description: str
    metadata: _containers.MessageMap[str, Value]
    digest: str
    size: int
    file_count: int
    logged_by: _containers.RepeatedScalarFieldContainer[str]
    used_by: _containers.RepeatedScalarFieldContainer[str]
    created_at: float
    manifest_path: str
    files: _containers.RepeatedCompositeFieldContainer[ArtifactFile]
    distributed_id: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., version: _Optional[str] = ..., version_index: _Optional[int] = ..., aliases: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., metadata: _Optional[_Mapping[str, Value]] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ..., file_count: _Optional[int] = ..., logged_by: _Optional[_Iterable[str]] = ..., used_by: _Optional[_Iterable[str]] = ..., created_at: _Optional[float] = ..., manifest_path: _Optional[str] = ..., files: _Optional[_Iterable[_Union[ArtifactFile, _Mapping]]] = ..., distributed_id: _Optional[str] = ...) -> None: ...

class CreateArtifactRequest(_message.Message):
    __slots__ = ("run_id", "name", "type", "description", "metadata", "aliases", "distributed_id", "base")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTED_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    name: str
    type: str
    description: str
    metadata: _containers.MessageMap[str, Value]
    aliases: _containers.RepeatedScalarFieldContainer[str]
    distributed_id: str
    base: str
    def __init__(self, run_id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., metadata: _Optional[_Mapping[str, Value]] = ..., aliases: _Optional[_Iterable[str]] = ..., distributed_id: _Optional[str] = ..., base: _Optional[str] = ...) -> None: ...

class CreateArtifactResponse(_message.Message):
    __slots__ = ("draft_id", "file_count")
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    file_count: int
    def __init__(self, draft_id: _Optional[str] = ..., file_count: _Optional[int] = ...) -> None: ...

class ArtifactFileSource(_message.Message):
    __slots__ = ("path", "source", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    source: str
    sha256: str
    def __init__(self, path: _Optional[str] = ..., source: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class ArtifactChunk(_message.Message):
    __slots__ = ("path", "data", "last", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    data: bytes
    last: bool
    sha256: str
    def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., sha256: _Optional[str] = ...) -> None: ...

class AddArtifactFilesRequest(_message.Message):
    __slots__ = ("draft_id", "file", "reference", "chunk", "remove")
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    file: ArtifactFileSource
    reference: ArtifactFile
    chunk: ArtifactChunk
    remove: str
    def __init__(self, draft_id: _Optional[str] = ..., file: _Optional[_Union[ArtifactFileSource, _Mapping]] = ..., reference: _Optional[_Union[ArtifactFile, _Mapping]] = ..., chunk: _Optional[_Union[ArtifactChunk, _Mapping]] = ..., remove: _Optional[str] = ...) -> None: ...

class AddArtifactFilesResponse(_message.Message):
    __slots__ = ("added", "bytes_stored", "bytes_deduplicated", "file_count")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    BYTES_STORED_FIELD_NUMBER: _ClassVar[int]
    BYTES_DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    added: int
    bytes_stored: int
    bytes_deduplicated: int
    file_count: int
    def __init__(self, added: _Optional[int] = ..., bytes_stored: _Optional[int] = ..., bytes_deduplicated: _Optional[int] = ..., file_count: _Optional[int] = ...) -> None: ...

class CommitArtifactRequest(_message.Message):
    __slots__ = ("draft_id",)
    DRAFT_ID_FIELD_NUMBER: _ClassVar[int]
    draft_id: str
    def __init__(self, draft_id: _Optional[str] = ...) -> None: ...

class CommitArtifactResponse(_message.Message):
    __slots__ = ("artifact", "existing")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    existing: bool
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., existing: _Optional[bool] = ...) -> None: ...

class GetArtifactRequest(_message.Message):
    __slots__ = ("name", "include_files", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FILES_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    include_files: bool
    type: str
    def __init__(self, name: _Optional[str] = ..., include_files: _Optional[bool] = ..., type: _Optional[str] = ...) -> None: ...

class GetArtifactResponse(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ...) -> None: ...

class UseArtifactRequest(_message.Message):
    __slots__ = ("run_id", "name", "type", "include_files")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FILES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    name: str
    type: str
    include_files: bool
    def __init__(self, run_id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., include_files: _Optional[bool] = ...) -> None: ...

class UseArtifactResponse(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ...) -> None: ...

class LinkArtifactRequest(_message.Message):
    __slots__ = ("run_id", "name", "target_path", "aliases")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    name: str
    target_path: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., name: _Optional[str] = ..., target_path: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class LinkedArtifact(_message.Message):
    __slots__ = ("collection", "target_path", "version", "version_index", "aliases", "artifact", "linked_at", "linked_by")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_INDEX_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    LINKED_AT_FIELD_NUMBER: _ClassVar[int]
    LINKED_BY_FIELD_NUMBER: _ClassVar[int]
    collection: str
    target_path: str
    version: str
    version_index: int
    aliases: _containers.RepeatedScalarFieldContainer[str]
    artifact: Artifact
    linked_at: float
    linked_by: str
    def __init__(self, collection: _Optional[str] = ..., target_path: _Optional[str] = ..., version: _Optional[str] = ..., version_index: _Optional[int] = ..., aliases: _Optional[_Iterable[str]] = ..., artifact: _Optional[_Union[Artifact, _Mapping]] = ..., linked_at: _Optional[float] = ..., linked_by: _Optional[str] = ...) -> None: ...

class LinkArtifactResponse(_message.Message):
    __slots__ = ("link",)
    LINK_FIELD_NUMBER: _ClassVar[int]
    link: LinkedArtifact
    def __init__(self, link: _Optional[_Union[LinkedArtifact, _Mapping]] = ...) -> None: ...

class SetArtifactAliasesRequest(_message.Message):
    __slots__ = ("name", "add", "remove", "run_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    add: _containers.RepeatedScalarFieldContainer[str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    run_id: str
    def __init__(self, name: _Optional[str] = ..., add: _Optional[_Iterable[str]] = ..., remove: _Optional[_Iterable[str]] = ..., run_id: _Optional[str] = ...) -> None: ...

class SetArtifactAliasesResponse(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ...) -> None: ...

class ListArtifactsRequest(_message.Message):
    __slots__ = ("name", "run_id", "direction", "type", "collection")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    run_id: str
    direction: str
    type: str
    collection: str
    def __init__(self, name: _Optional[str] = ..., run_id: _Optional[str] = ..., direction: _Optional[str] = ..., type: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class ListArtifactsResponse(_message.Message):
    __slots__ = ("artifacts", "links")
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    links: _containers.RepeatedCompositeFieldContainer[LinkedArtifact]
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[LinkedArtifact, _Mapping]]] = ...) -> None: ...

class DownloadArtifactRequest(_message.Message):
    __slots__ = ("name", "root", "copy", "paths")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    COPY_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    name: str
    root: str
    copy: bool
    paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., root: _Optional[str] = ..., copy: _Optional[bool] = ..., paths: _Optional[_Iterable[str]] = ...) -> None: ...

class DownloadArtifactResponse(_message.Message):
    __slots__ = ("path", "data", "offset", "last", "linked", "skipped_ref")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    LINKED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_REF_FIELD_NUMBER: _ClassVar[int]
    path: str
    data: bytes
    offset: int
    last: bool
    linked: bool
    skipped_ref: str
    def __init__(self, path: _Optional[str] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ..., last: _Optional[bool] = ..., linked: _Optional[bool] = ..., skipped_ref: _Optional[str] = ...) -> None: ...
