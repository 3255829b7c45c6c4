// The conformance scenario over grpc-java, with stubs that protobuf-maven-plugin generates
// from the repository's proto/ at build time, and grpc-services' health and reflection
// v1 stubs.
//
// Usage: java -cp ... conformance.Conformance ADDRESS RUN_ID WORKDIR
//
// ADDRESS is the sidecar's address as `runcore serve --port-file` writes it
// (tcp://HOST:PORT or unix:///PATH); the channel is made from that address alone.
// The scenario is tests/conformance/README.md's. Exits 1 when anything differs.
package conformance;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.StreamObserver;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import runcore.v1.Runcore.AlertRequest;
import runcore.v1.Runcore.AlertResponse;
import runcore.v1.Runcore.DefineMetricRequest;
import runcore.v1.Runcore.DroppedRow;
import runcore.v1.Runcore.FinishRequest;
import runcore.v1.Runcore.FinishResponse;
import runcore.v1.Runcore.GetRunRequest;
import runcore.v1.Runcore.GetRunResponse;
import runcore.v1.Runcore.HistoryRow;
import runcore.v1.Runcore.InitRequest;
import runcore.v1.Runcore.InitResponse;
import runcore.v1.Runcore.ListValue;
import runcore.v1.Runcore.LogAck;
import runcore.v1.Runcore.LogBatch;
import runcore.v1.Runcore.LogRequest;
import runcore.v1.Runcore.LogResponse;
import runcore.v1.Runcore.MapValue;
import runcore.v1.Runcore.MetricDefinition;
import runcore.v1.Runcore.Row;
import runcore.v1.Runcore.RunInfo;
import runcore.v1.Runcore.SaveFilesRequest;
import runcore.v1.Runcore.ScanHistoryRequest;
import runcore.v1.Runcore.ScanHistoryResponse;
import runcore.v1.Runcore.SystemMetricsSettings;
import runcore.v1.Runcore.UpdateConfigRequest;
import runcore.v1.Runcore.UpdateSummaryRequest;
import runcore.v1.Runcore.Value;
import runcore.v1.RunServiceGrpc;

public final class Conformance {
  private static final String PROJECT = "conformance";
  private static final double NAN = Double.NaN;
  private static final List<String> failures = new ArrayList<>();
  private static String runId;
  private static String workdir;

  private Conformance() {}

  private static void check(boolean ok, String what) {
    if (!ok) {
      failures.add(what);
      System.out.println("  MISMATCH: " + what);
    }
  }

  /** Values here: Double, Long, Boolean, String, null, Map and List; Double.equals has NaN == NaN. */
  private static void eq(Object got, Object want, String what) {
    check(Objects.equals(got, want), what + ": got " + got + ", want " + want);
  }

  @SafeVarargs
  private static <T> List<T> list(T... xs) {
    return new ArrayList<>(Arrays.asList(xs));
  }

  /** An insertion-ordered map from alternating keys and values. */
  private static Map<String, Object> map(Object... kvs) {
    Map<String, Object> out = new LinkedHashMap<>();
    for (int i = 0; i < kvs.length; i += 2) {
      out.put((String) kvs[i], kvs[i + 1]);
    }
    return out;
  }

  // --- Values -------------------------------------------------------------------

  @SuppressWarnings("unchecked")
  private static Value val(Object x) {
    if (x == null) {
      return Value.newBuilder().setNullValue(true).build();
    } else if (x instanceof Boolean b) {
      return Value.newBuilder().setBoolValue(b).build();
    } else if (x instanceof Long l) {
      return Value.newBuilder().setIntValue(l).build();
    } else if (x instanceof Double d) {
      return Value.newBuilder().setDoubleValue(d).build();
    } else if (x instanceof String s) {
      return Value.newBuilder().setStringValue(s).build();
    } else if (x instanceof Map<?, ?> m) {
      return Value.newBuilder()
          .setMapValue(MapValue.newBuilder().putAllFields(vmap((Map<String, Object>) m)))
          .build();
    } else if (x instanceof List<?> l) {
      ListValue.Builder b = ListValue.newBuilder();
      for (Object e : l) {
        b.addValues(val(e));
      }
      return Value.newBuilder().setListValue(b).build();
    }
    throw new IllegalArgumentException("val: " + x.getClass());
  }

  private static Map<String, Value> vmap(Map<String, Object> d) {
    Map<String, Value> out = new LinkedHashMap<>();
    d.forEach((k, v) -> out.put(k, val(v)));
    return out;
  }

  private static Object jv(Value v) {
    switch (v.getKindCase()) {
      case DOUBLE_VALUE:
        return v.getDoubleValue();
      case INT_VALUE:
        return v.getIntValue();
      case BOOL_VALUE:
        return v.getBoolValue();
      case STRING_VALUE:
        return v.getStringValue();
      case MAP_VALUE:
        return jmap(v.getMapValue().getFieldsMap());
      case LIST_VALUE:
        List<Object> out = new ArrayList<>();
        for (Value e : v.getListValue().getValuesList()) {
          out.add(jv(e));
        }
        return out;
      case NULL_VALUE:
      case KIND_NOT_SET:
        return null;
      default:
        return "<" + v.getKindCase() + ">";
    }
  }

  private static Map<String, Object> jmap(Map<String, Value> f) {
    Map<String, Object> out = new TreeMap<>();
    f.forEach((k, v) -> out.put(k, jv(v)));
    return out;
  }

  private static Map<String, Object> config() {
    return map(
        "lr", 0.001,
        "epochs", 3L,
        "arch", "mlp",
        "optimizer", map(
            "name", "adam",
            "betas", list(0.9, 0.999),
            "schedule", map("warmup", 100L, "cosine", true)));
  }

  // --- Scenario -----------------------------------------------------------------

  /** A row: scalars in the order given (alternating key, Double), then values. */
  private static Row row(List<String> keys, Object[] scalars, Map<String, Object> values, Long step,
      Boolean commit) {
    Row.Builder r = Row.newBuilder();
    for (int i = 0; i < scalars.length; i += 2) {
      r.addScalarKeys(keys.indexOf((String) scalars[i]));
      r.addScalarValues((Double) scalars[i + 1]);
    }
    if (values != null) {
      r.putAllValues(vmap(values));
    }
    if (step != null) {
      r.setStep(step);
    }
    if (commit != null) {
      r.setCommit(commit);
    }
    return r.build();
  }

  private static Object[] s(Object... kvs) {
    return kvs;
  }

  private static List<Object> dropped(List<DroppedRow> ds) {
    List<Object> out = new ArrayList<>();
    for (DroppedRow d : ds) {
      out.add(list((long) d.getRowIndex(), d.getStep(), d.getCurrentStep()));
    }
    return out;
  }

  private static Object exitCode(RunInfo r) {
    return r.hasExitCode() ? (Object) r.getExitCode() : "absent";
  }

  /** Sends every message of a client or bidi stream, half-closes, collects the replies. */
  private static final class Collector<T> implements StreamObserver<T> {
    final List<T> items = new ArrayList<>();
    final CompletableFuture<List<T>> done = new CompletableFuture<>();

    @Override
    public void onNext(T v) {
      items.add(v);
    }

    @Override
    public void onError(Throwable t) {
      done.completeExceptionally(t);
    }

    @Override
    public void onCompleted() {
      done.complete(items);
    }

    List<T> await() throws Exception {
      try {
        return done.get(60, TimeUnit.SECONDS);
      } catch (java.util.concurrent.ExecutionException e) {
        if (e.getCause() instanceof StatusRuntimeException sre) {
          throw sre;
        }
        throw e;
      }
    }
  }

  private static void scenario(ManagedChannel channel) throws Exception {
    // 1. Health.
    HealthGrpc.HealthBlockingStub health =
        HealthGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
    for (String service : list("", "runcore.v1.RunService")) {
      eq(health.check(HealthCheckRequest.newBuilder().setService(service).build()).getStatus().name(),
          "SERVING", "health '" + service + "'");
    }

    // 2. Reflection v1 lists the services.
    Collector<ServerReflectionResponse> refl = new Collector<>();
    StreamObserver<ServerReflectionRequest> out = ServerReflectionGrpc.newStub(channel)
        .withDeadlineAfter(60, TimeUnit.SECONDS).serverReflectionInfo(refl);
    out.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
    out.onCompleted();
    List<ServerReflectionResponse> replies = refl.await();
    eq(replies.size(), 1, "reflection replies");
    List<String> names = new ArrayList<>();
    for (ServerReflectionResponse r : replies) {
      for (ServiceResponse sr : r.getListServicesResponse().getServiceList()) {
        names.add(sr.getName());
      }
    }
    check(names.contains("runcore.v1.RunService"), "reflection lists runcore.v1.RunService: " + names);
    check(names.contains("grpc.health.v1.Health"), "reflection lists grpc.health.v1.Health: " + names);

    RunServiceGrpc.RunServiceBlockingStub c =
        RunServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
    RunServiceGrpc.RunServiceStub async =
        RunServiceGrpc.newStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);

    // 3. Init.
    InitResponse init = c.init(InitRequest.newBuilder()
        .setId(runId).setProject(PROJECT).setName("conformance-run").addTags("conformance")
        .setNotes("any language, unmodified").putAllConfig(vmap(config())).setWorkingDir(workdir)
        .setSystemMetrics(SystemMetricsSettings.newBuilder().setDisabled(true))
        .build());
    eq(init.getRun().getId(), runId, "Init run.id");
    eq(init.getRun().getProject(), PROJECT, "Init run.project");
    eq(init.getRun().getName(), "conformance-run", "Init run.name");
    eq(init.getRun().getState().name(), "RUN_STATE_RUNNING", "Init run.state");
    eq(init.getRun().getPath(), PROJECT + "/" + runId, "Init run.path");
    check(init.getRun().getDir().endsWith("/" + PROJECT + "/" + runId + "/files"),
        "Init run.dir: " + init.getRun().getDir());
    eq(init.getResumed(), false, "Init resumed");
    eq(init.getStartingStep(), 0L, "Init starting_step");
    eq(init.getLastSeq(), 0L, "Init last_seq");

    // 4. DefineMetric.
    MetricDefinition m = c.defineMetric(DefineMetricRequest.newBuilder()
        .setRunId(runId).setName("loss").setSummary("min,max").build()).getMetric();
    eq(list(m.getName(), m.getSummaryList(), m.getStepMetric()),
        list("loss", list("min", "max"), ""), "DefineMetric loss");
    m = c.defineMetric(DefineMetricRequest.newBuilder()
        .setRunId(runId).setName("epoch").setHidden(true).build()).getMetric();
    eq(list(m.getName(), m.getHidden()), list("epoch", true), "DefineMetric epoch");
    m = c.defineMetric(DefineMetricRequest.newBuilder()
        .setRunId(runId).setName("val/*").setStepMetric("epoch").setSummary("max").build()).getMetric();
    eq(list(m.getName(), m.getStepMetric(), m.getStepSync(), m.getSummaryList()),
        list("val/*", "epoch", true, list("max")), "DefineMetric val/*");

    // 5. Unary Log.
    eq(log(c, map("loss", 2.0, "note", "hello", "flag", true, "count", 7L), null, null).getStep(), 1L,
        "Log 1 step");
    eq(log(c, map("partial", 1.0), null, false).getStep(), 1L, "Log 2 (commit=false) step");
    eq(log(c, map("bad", NAN, "nested", map("x", 1.5, "y", map("z", "deep"))), null, true).getStep(),
        2L, "Log 3 (commit) step");
    eq(log(c, map("loss", 1.5), 5L, null).getStep(), 5L, "Log 4 (step=5) step");
    eq(log(c, map("extra", 4.0), 5L, null).getStep(), 5L, "Log 5 (same step) step");
    LogResponse r6 = log(c, map("loss", 9.0), 3L, null);
    eq(r6.getStep(), 5L, "Log 6 (smaller step) step");
    eq(dropped(r6.getDroppedList()), list(list(0L, 3L, 5L)), "Log 6 dropped");
    check(r6.getDroppedList().stream().allMatch(d -> !d.getReason().isEmpty()),
        "Log 6 dropped row has a reason");
    LogResponse r7 = log(c, map("none", null, "big", 1L << 40), 6L, true);
    eq(r7.getStep(), 7L, "Log 7 (step=6, commit) step");
    eq(r7.getDroppedCount(), 0, "Log 7 dropped");

    // 6. LogStream.
    List<String> k1 = list("loss", "epoch");
    List<String> k2 = list("val/acc", "loss", "epoch");
    List<String> k3 = list("loss", "val/loss");
    List<LogBatch> batches = list(
        LogBatch.newBuilder().setRunId(runId).setSeq(1).addAllKeys(k1)
            .addRows(row(k1, s("loss", 1.0), map("phase", "train"), null, null))
            .addRows(row(k1, s("loss", 0.75), null, null, null))
            .addRows(row(k1, s("loss", 0.5, "epoch", 0.0), null, null, null))
            .build(),
        LogBatch.newBuilder().setRunId(runId).setSeq(2).addAllKeys(k2)
            .addRows(row(k2, s("loss", 0.25, "epoch", 1.0, "val/acc", 0.5), null, null, null))
            .addRows(row(k2, s("val/acc", 0.625), null, null, null))
            .addRows(row(k2, s("loss", 0.125),
                map("deep", map("a", map("k", 3L)), "items", list("a", 1L, true)), null, null))
            .build(),
        LogBatch.newBuilder().setRunId(runId).setSeq(3).addAllKeys(k3)
            .addRows(row(k3, s("loss", NAN, "val/loss", 0.375), null, null, null))
            .addRows(row(k3, s("loss", 0.0625), null, 20L, null))
            .addRows(row(k3, s("loss", 0.03125), null, null, true))
            .addRows(row(k3, s("loss", 8.0), null, 15L, null))
            .build());
    Collector<LogAck> ackc = new Collector<>();
    StreamObserver<LogBatch> send = async.logStream(ackc);
    for (LogBatch b : batches) {
      send.onNext(b);
    }
    send.onNext(batches.get(1));
    send.onCompleted();
    List<LogAck> acks = ackc.await();
    List<Object> ackIds = new ArrayList<>();
    List<Object> ackSteps = new ArrayList<>();
    List<Object> ackDropped = new ArrayList<>();
    for (int i = 0; i < acks.size(); i++) {
      LogAck a = acks.get(i);
      ackIds.add(list(a.getRunId(), a.getSeq(), a.getDuplicate()));
      if (i < 3) {
        ackSteps.add(a.getStep());
        ackDropped.add(dropped(a.getDroppedList()));
      }
    }
    eq(ackIds, list(list(runId, 1L, false), list(runId, 2L, false), list(runId, 3L, false),
        list(runId, 2L, true)), "LogStream acks");
    eq(ackSteps, list(10L, 13L, 21L), "LogStream ack steps");
    eq(ackDropped, list(list(), list(), list(list(3L, 15L, 21L))), "LogStream dropped rows");

    // 7. UpdateConfig.
    Map<String, Object> cfg = jmap(c.updateConfig(UpdateConfigRequest.newBuilder()
        .setRunId(runId).putAllConfig(vmap(map("epochs", 5L, "extra", map("k", "v"))))
        .addRemove("arch").build()).getConfigMap());
    Map<String, Object> wantCfg = config();
    wantCfg.remove("arch");
    wantCfg.put("epochs", 5L);
    wantCfg.put("extra", map("k", "v"));
    eq(cfg, wantCfg, "UpdateConfig config");

    // 8. UpdateSummary.
    Map<String, Object> summ = jmap(c.updateSummary(UpdateSummaryRequest.newBuilder()
        .setRunId(runId).putAllSummary(vmap(map("best_acc", 0.875, "note", "summary-note")))
        .addRemove("count").build()).getSummaryMap());
    eq(summ.get("best_acc"), 0.875, "UpdateSummary best_acc");
    eq(summ.get("note"), "summary-note", "UpdateSummary note (explicit wins)");
    check(!summ.containsKey("count"), "UpdateSummary removed count: " + summ.keySet());
    eq(summ.get("loss"), map("min", 0.03125, "max", 2.0), "UpdateSummary loss min/max");
    eq(summ.get("val/acc"), map("max", 0.625), "UpdateSummary val/acc max (glob)");
    eq(summ.get("val/loss"), map("max", 0.375), "UpdateSummary val/loss max (glob)");

    // 9. Alert twice.
    AlertResponse a1 = alert(c, "first");
    eq(list(a1.getSent(), a1.getThrottled()), list(true, false), "Alert 1 (sent, throttled)");
    AlertResponse a2 = alert(c, "second");
    eq(list(a2.getSent(), a2.getThrottled()), list(false, true), "Alert 2 (sent, throttled)");
    check(a2.getThrottledUntil() > System.currentTimeMillis() / 1000.0 + 500,
        "Alert 2 throttled_until " + a2.getThrottledUntil() + " is ~600 s ahead");

    // 10. SaveFiles.
    Path outDir = Path.of(workdir, "out");
    Files.createDirectories(outDir);
    Files.writeString(outDir.resolve("result.txt"), "conformance result\n", StandardCharsets.UTF_8);
    Files.writeString(outDir.resolve("skip.bin"), "not matched\n", StandardCharsets.UTF_8);
    eq(c.saveFiles(SaveFilesRequest.newBuilder().setRunId(runId).setGlob("out/*.txt").setPolicy("now")
        .build()).getSavedList(), list("out/result.txt"), "SaveFiles saved");

    // 11. Finish.
    FinishResponse fin = c.finish(FinishRequest.newBuilder().setRunId(runId).setExitCode(0).build());
    eq(fin.getRun().getState().name(), "RUN_STATE_FINISHED", "Finish run.state");
    eq(exitCode(fin.getRun()), 0, "Finish run.exit_code");
    eq(fin.getRun().getStep(), 21L, "Finish run.step");
    eq(fin.getRun().getHistoryRows(), 12L, "Finish run.history_rows");
    Map<String, Object> fsum = jmap(fin.getSummaryMap());
    eq(fsum.get("_step"), 20L, "Finish summary _step");
    eq(fsum.get("best_acc"), 0.875, "Finish summary best_acc");

    // 12. GetRun.
    GetRunResponse got = c.getRun(GetRunRequest.newBuilder().setRunId(runId).build());
    RunInfo run = got.getRun();
    eq(run.getState().name(), "RUN_STATE_FINISHED", "GetRun run.state");
    eq(exitCode(run), 0, "GetRun run.exit_code");
    eq(list(run.getId(), run.getProject(), run.getName()), list(runId, PROJECT, "conformance-run"),
        "GetRun identity");
    eq(run.getTagsList(), list("conformance"), "GetRun tags");
    check(run.getStartTime() > 0 && run.getStartTime() <= run.getEndTime(),
        "GetRun start " + run.getStartTime() + " <= end " + run.getEndTime());
    eq(list(run.getStep(), run.getHistoryRows()), list(21L, 12L), "GetRun (step, history_rows)");
    eq(jmap(got.getConfigMap()), wantCfg, "GetRun config");
    eq(got.getFilesList(), list("out/result.txt"), "GetRun files");
    List<String> metricNames = new ArrayList<>();
    for (MetricDefinition md : got.getMetricsList()) {
      metricNames.add(md.getName());
    }
    metricNames.sort(null);
    eq(metricNames, list("epoch", "loss", "val/*"), "GetRun metrics");
    eq(jmap(got.getSummaryMap()), fsum, "GetRun summary equals Finish summary");

    // 13. ScanHistory.
    List<HistoryRow> rows = scan(c, List.of());
    List<Object> steps = new ArrayList<>();
    Map<Long, Map<String, Object>> byStep = new TreeMap<>();
    for (HistoryRow r : rows) {
      steps.add(r.getStep());
      byStep.put(r.getStep(), jmap(r.getValuesMap()));
    }
    eq(steps, list(0L, 1L, 5L, 6L, 7L, 8L, 9L, 10L, 11L, 12L, 13L, 20L), "ScanHistory steps");
    if (rows.size() == 12) {
      eq(byStep.get(0L).get("count"), 7L, "row 0 count (int)");
      eq(byStep.get(0L).get("flag"), true, "row 0 flag (bool)");
      eq(byStep.get(0L).get("note"), "hello", "row 0 note (string)");
      eq(byStep.get(1L).get("bad"), NAN, "row 1 bad (NaN)");
      eq(byStep.get(1L).get("nested"), map("x", 1.5, "y", map("z", "deep")), "row 1 nested");
      eq(byStep.get(1L).get("partial"), 1.0, "row 1 partial (commit=false joined)");
      eq(list(byStep.get(5L).get("loss"), byStep.get(5L).get("extra")), list(1.5, 4.0), "row 5 merged");
      eq(list(byStep.get(6L).containsKey("none"), byStep.get(6L).get("none"), byStep.get(6L).get("big")),
          list(true, null, 1L << 40), "row 6 null and int64");
      eq(byStep.get(11L).get("epoch"), 1.0, "row 11 epoch (step_sync)");
      eq(byStep.get(12L).get("items"), list("a", 1L, true), "row 12 list");
      eq(byStep.get(13L).get("loss"), NAN, "row 13 loss (NaN)");
      eq(byStep.get(20L).get("loss"), 0.03125, "row 20 loss (merged into the pending row)");
    }
    List<Object> only = new ArrayList<>();
    for (HistoryRow r : scan(c, List.of("val/acc"))) {
      only.add(r.getStep());
    }
    eq(only, list(10L, 11L), "ScanHistory keys=[val/acc] steps");
  }

  private static LogResponse log(RunServiceGrpc.RunServiceBlockingStub c, Map<String, Object> data,
      Long step, Boolean commit) {
    LogRequest.Builder req = LogRequest.newBuilder().setRunId(runId).putAllData(vmap(data));
    if (step != null) {
      req.setStep(step);
    }
    if (commit != null) {
      req.setCommit(commit);
    }
    return c.log(req.build());
  }

  private static AlertResponse alert(RunServiceGrpc.RunServiceBlockingStub c, String text) {
    return c.alert(AlertRequest.newBuilder().setRunId(runId).setTitle("conformance alert")
        .setText(text).setLevel("WARN").setWaitDuration(600).build());
  }

  private static List<HistoryRow> scan(RunServiceGrpc.RunServiceBlockingStub c, List<String> keys) {
    List<HistoryRow> rows = new ArrayList<>();
    Iterator<ScanHistoryResponse> it =
        c.scanHistory(ScanHistoryRequest.newBuilder().setRunId(runId).addAllKeys(keys).build());
    while (it.hasNext()) {
      rows.addAll(it.next().getRowsList());
    }
    return rows;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: Conformance ADDRESS RUN_ID WORKDIR");
      System.exit(2);
    }
    runId = args[1];
    workdir = args[2];
    // grpc-java takes unix:///path as is, and host:port for TCP.
    String target = args[0].startsWith("tcp://") ? args[0].substring("tcp://".length()) : args[0];
    System.out.println("java grpc-java " + io.grpc.ManagedChannelBuilder.class.getPackage()
        .getImplementationVersion() + ": " + runId + " at " + target);
    ManagedChannel channel = Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
    try {
      scenario(channel);
    } catch (StatusRuntimeException e) {
      failures.add("RPC failed: " + e.getStatus());
      System.out.println("  RPC FAILED: " + e.getStatus());
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (!failures.isEmpty()) {
      System.out.println("FAIL " + runId + ": " + failures.size() + " mismatch(es)");
      System.exit(1);
    }
    System.out.println("PASS " + runId);
  }
}
