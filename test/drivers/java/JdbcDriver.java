// PostgreSQL JDBC scenarios for the driver tests. Run as a single source file:
//   java -cp /usr/share/java/postgresql.jar JdbcDriver.java <jdbc-url-without-params> <user> <password> <table-prefix>
// Prints one JSON document with what each scenario saw. Nothing in it may depend on which server
// (upstream directly or the proxy) answered, so the test can compare the two runs as a whole.

import java.io.StringReader;
import java.sql.*;
import java.util.*;
import java.util.concurrent.atomic.AtomicReference;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.PGStatement;
import org.postgresql.copy.CopyManager;

public class JdbcDriver {
  static String baseUrl, user, password, P;

  interface Scenario { Object run() throws Exception; }

  static Connection connect(String extra) throws SQLException {
    Properties props = new Properties();
    props.setProperty("user", user);
    props.setProperty("password", password);
    props.setProperty("connectTimeout", "10");
    props.setProperty("socketTimeout", "60");
    String url = baseUrl + (extra.isEmpty() ? "" : (baseUrl.contains("?") ? "&" : "?") + extra);
    return DriverManager.getConnection(url, props);
  }

  static Map<String, Object> err(SQLException e) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("class", e.getClass().getSimpleName());
    m.put("sqlstate", e.getSQLState());
    m.put("message", e.getMessage());
    if (e instanceof org.postgresql.util.PSQLException) {
      org.postgresql.util.ServerErrorMessage s = ((org.postgresql.util.PSQLException) e).getServerErrorMessage();
      if (s != null) {
        m.put("severity", s.getSeverity());
        m.put("detail", s.getDetail());
        m.put("constraint", s.getConstraint());
        m.put("routine", s.getRoutine());
        m.put("position", s.getPosition());
      }
    }
    return m;
  }

  static List<Object> column(ResultSet rs, int col) throws SQLException {
    List<Object> out = new ArrayList<>();
    while (rs.next()) out.add(rs.getObject(col));
    return out;
  }

  static List<List<Object>> rows(ResultSet rs) throws SQLException {
    List<List<Object>> out = new ArrayList<>();
    int n = rs.getMetaData().getColumnCount();
    while (rs.next()) {
      List<Object> r = new ArrayList<>();
      for (int i = 1; i <= n; i++) r.add(rs.getObject(i));
      out.add(r);
    }
    return out;
  }

  static Object scalar(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      rs.next();
      return rs.getObject(1);
    }
  }

  static void exec(Connection c, String sql) throws SQLException {
    try (Statement s = c.createStatement()) { s.execute(sql); }
  }

  // ---- scenarios ----

  /** prepareThreshold=1: the statement is server-prepared (named, binary results) and reused 10 times. */
  static Object prepareThreshold() throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("prepareThreshold=1")) {
      List<Object> vals = new ArrayList<>();
      List<Object> serverPrepare = new ArrayList<>();
      try (PreparedStatement ps = c.prepareStatement("select ?::int + 1 as n, ?::text as t, 1.5::float8 as f, now() is not null as b, 'drv_jdbc_thr1' as marker")) {
        for (int i = 0; i < 10; i++) {
          ps.setInt(1, i);
          ps.setString(2, "s" + i);
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            vals.add(Arrays.asList(rs.getInt(1), rs.getString(2), rs.getDouble(3), rs.getBoolean(4)));
          }
          serverPrepare.add(ps.unwrap(PGStatement.class).isUseServerPrepare());
        }
      }
      m.put("vals", vals);
      m.put("server_prepare", serverPrepare);
      m.put("prepared_upstream", rows(c.createStatement().executeQuery(
          "select name like 'S\\_%' as named, parameter_types::text from pg_prepared_statements where statement like '%drv_jdbc_thr1%' and statement not like '%pg_prepared_statements%'")));
    }
    // Default threshold (5): unnamed for the first 4 executions, then server-prepared and reused.
    try (Connection c = connect("")) {
      List<Object> counts = new ArrayList<>();
      try (PreparedStatement ps = c.prepareStatement("select ?::int * 2, 'drv_jdbc_thr5' as marker")) {
        for (int i = 0; i < 10; i++) {
          ps.setInt(1, i);
          try (ResultSet rs = ps.executeQuery()) { rs.next(); counts.add(rs.getInt(1)); }
          counts.add(((Number) scalar(c, "select count(*) from pg_prepared_statements where statement like '%drv_jdbc_thr5%' and statement not like '%pg_prepared_statements%'")).intValue());
        }
      }
      m.put("threshold5", counts);
    }
    return m;
  }

  static Object batch() throws Exception {
    String t = P + "_batch";
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("")) {
      exec(c, "drop table if exists " + t);
      exec(c, "create table " + t + " (id int primary key, v text, d double precision)");
      try {
        c.setAutoCommit(false);
        try (PreparedStatement ps = c.prepareStatement("insert into " + t + " (id, v, d) values (?, ?, ?)")) {
          for (int i = 0; i < 1000; i++) {
            ps.setInt(1, i);
            ps.setString(2, "v" + i);
            ps.setDouble(3, i / 8.0);
            ps.addBatch();
          }
          int[] counts = ps.executeBatch();
          m.put("counts_len", counts.length);
          m.put("counts_all_one", Arrays.stream(counts).allMatch(x -> x == 1));
        }
        c.commit();
        // A failing row in the middle of a batch.
        try (PreparedStatement ps = c.prepareStatement("insert into " + t + " (id, v, d) values (?, ?, ?)")) {
          for (int id : new int[] {2000, 2001, 5, 2002}) {
            ps.setInt(1, id);
            ps.setString(2, "x");
            ps.setDouble(3, 0);
            ps.addBatch();
          }
          ps.executeBatch();
          m.put("batch_error", null);
        } catch (BatchUpdateException e) {
          m.put("batch_error", err(e.getNextException() != null ? e.getNextException() : e));
          m.put("batch_error_state", e.getSQLState());
        }
        c.rollback();
        // Statement batch with mixed SQL.
        try (Statement s = c.createStatement()) {
          s.addBatch("update " + t + " set v = 'u' where id < 10");
          s.addBatch("delete from " + t + " where id >= 990");
          s.addBatch("insert into " + t + " values (5000, 'z', 1)");
          m.put("stmt_batch", Arrays.stream(s.executeBatch()).boxed().toList());
        }
        c.commit();
        c.setAutoCommit(true);
        m.put("agg", rows(c.createStatement().executeQuery("select count(*), sum(id), sum(d), count(*) filter (where v = 'u') from " + t)).get(0));
      } finally {
        c.setAutoCommit(true);
        exec(c, "drop table if exists " + t);
      }
    }
    // reWriteBatchedInserts turns the batch into multi-row INSERTs.
    try (Connection c = connect("reWriteBatchedInserts=true")) {
      exec(c, "drop table if exists " + t + "_rw");
      exec(c, "create table " + t + "_rw (id int)");
      try (PreparedStatement ps = c.prepareStatement("insert into " + t + "_rw (id) values (?)")) {
        for (int i = 0; i < 300; i++) { ps.setInt(1, i); ps.addBatch(); }
        int[] counts = ps.executeBatch();
        m.put("rewrite_len", counts.length);
        m.put("rewrite_total", ((Number) scalar(c, "select count(*) from " + t + "_rw")).intValue());
      } finally {
        exec(c, "drop table if exists " + t + "_rw");
      }
    }
    return m;
  }

  /** setFetchSize inside a transaction: a portal read in pieces (Execute with a row limit). */
  static Object fetchSize() throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("")) {
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.setFetchSize(50);
        long n = 0, sum = 0;
        try (ResultSet rs = s.executeQuery("select g, md5(g::text) from generate_series(1, 3000) g")) {
          while (rs.next()) { n++; sum += rs.getLong(1); }
        }
        m.put("stmt", Arrays.asList(n, sum));
      }
      try (PreparedStatement ps = c.prepareStatement("select g from generate_series(1, ?) g where g % ? = 0")) {
        ps.setFetchSize(7);
        List<Object> reps = new ArrayList<>();
        for (int rep = 0; rep < 6; rep++) { // past prepareThreshold: named statement + portal
          ps.setInt(1, 1000);
          ps.setInt(2, 3 + rep);
          long n = 0, sum = 0;
          try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) { n++; sum += rs.getLong(1); }
          }
          reps.add(Arrays.asList(n, sum));
        }
        m.put("prepared", reps);
      }
      // Two open portals interleaved.
      try (Statement a = c.createStatement(); Statement b = c.createStatement()) {
        a.setFetchSize(10);
        b.setFetchSize(10);
        ResultSet ra = a.executeQuery("select g from generate_series(1, 100) g");
        ResultSet rb = b.executeQuery("select -g from generate_series(1, 100) g");
        long s = 0;
        while (ra.next() && rb.next()) s += ra.getLong(1) * 1000 + rb.getLong(1);
        m.put("interleaved", s);
      }
      c.commit();
    }
    return m;
  }

  /** JDBC sends BEGIN (autocommit off) and SET through the extended protocol. */
  static Object beginAndSet() throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("ApplicationName=drv_jdbc_start")) {
      m.put("startup_app", scalar(c, "show application_name"));
      m.put("extra_float_digits", scalar(c, "show extra_float_digits"));
      m.put("float_roundtrip", scalar(c, "select 0.1::float8 + 0.2::float8"));
      try (Statement s = c.createStatement()) {
        s.execute("SET application_name = 'drv_jdbc'");
        s.execute("SET search_path TO public, pg_catalog");
        s.execute("SET TIME ZONE 'UTC'");
      }
      m.put("app", scalar(c, "show application_name"));
      m.put("client_info_app", c.getClientInfo("ApplicationName"));
      m.put("search_path", scalar(c, "show search_path"));
      c.setAutoCommit(false);
      m.put("in_tx_xid_stable", scalar(c, "select txid_current() = txid_current()"));
      long x1 = ((Number) scalar(c, "select txid_current()")).longValue();
      long x2 = ((Number) scalar(c, "select txid_current()")).longValue();
      m.put("same_tx", x1 == x2);
      try (PreparedStatement ps = c.prepareStatement("SET LOCAL statement_timeout = 12345")) { ps.execute(); }
      m.put("local_timeout", scalar(c, "show statement_timeout"));
      c.commit();
      c.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE); // allowed only between transactions
      m.put("isolation", scalar(c, "show transaction_isolation"));
      c.rollback();
      c.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
      m.put("after_commit_timeout", scalar(c, "show statement_timeout"));
      c.rollback();
      c.setReadOnly(true);
      try {
        exec(c, "create temp table drv_jdbc_ro (a int)");
        m.put("read_only_error", null);
      } catch (SQLException e) {
        m.put("read_only_error", err(e));
      }
      c.rollback();
      c.setReadOnly(false);
      c.setAutoCommit(true);
      // Errors mid-transaction: aborted until rollback, then usable; savepoints.
      c.setAutoCommit(false);
      try { exec(c, "select 1/0"); } catch (SQLException e) { m.put("div", err(e)); }
      try { exec(c, "select 1"); } catch (SQLException e) { m.put("aborted", err(e)); }
      c.rollback();
      m.put("after_rollback", scalar(c, "select 'fine'"));
      Savepoint sp = c.setSavepoint("sp1");
      try { exec(c, "select nosuch"); } catch (SQLException e) { m.put("in_savepoint", e.getSQLState()); }
      c.rollback(sp);
      m.put("after_savepoint", scalar(c, "select 'fine again'"));
      c.commit();
      c.setAutoCommit(true);
      // Warnings (NoticeResponse) attach to the statement.
      try (Statement s = c.createStatement()) {
        s.execute("do $$ begin raise notice 'jdbc notice %', 5; raise warning 'jdbc warning'; end $$");
        List<Object> w = new ArrayList<>();
        for (SQLWarning x = s.getWarnings(); x != null; x = x.getNextWarning()) w.add(Arrays.asList(x.getSQLState(), x.getMessage()));
        m.put("warnings", w);
      }
    }
    return m;
  }

  static Object generatedKeys() throws Exception {
    String t = P + "_keys";
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("")) {
      exec(c, "drop table if exists " + t);
      exec(c, "create table " + t + " (id serial primary key, v text, created int default 42)");
      try {
        try (PreparedStatement ps = c.prepareStatement("insert into " + t + " (v) values (?)", Statement.RETURN_GENERATED_KEYS)) {
          List<Object> keys = new ArrayList<>();
          for (int i = 0; i < 7; i++) { // past prepareThreshold
            ps.setString(1, "k" + i);
            ps.executeUpdate();
            try (ResultSet rs = ps.getGeneratedKeys()) { rs.next(); keys.add(Arrays.asList(rs.getInt("id"), rs.getString("v"), rs.getInt("created"))); }
          }
          m.put("keys", keys);
        }
        try (PreparedStatement ps = c.prepareStatement("insert into " + t + " (v) values (?)", new String[] {"id", "created"})) {
          ps.setString(1, "named");
          m.put("update_count", ps.executeUpdate());
          m.put("named_cols", rows(ps.getGeneratedKeys()));
        }
        try (PreparedStatement ps = c.prepareStatement("insert into " + t + " (v) values (?)", Statement.RETURN_GENERATED_KEYS)) {
          for (int i = 0; i < 3; i++) { ps.setString(1, "b" + i); ps.addBatch(); }
          ps.executeBatch();
          m.put("batch_keys", column(ps.getGeneratedKeys(), 1));
        }
        try (PreparedStatement ps = c.prepareStatement("update " + t + " set v = v || '!' where id <= ? returning id, v")) {
          ps.setInt(1, 3);
          m.put("returning", rows(ps.executeQuery()));
        }
        try (Statement s = c.createStatement()) {
          s.executeUpdate("delete from " + t + " where id = 1", Statement.RETURN_GENERATED_KEYS);
          m.put("delete_keys", rows(s.getGeneratedKeys()));
        }
      } finally {
        exec(c, "drop table if exists " + t);
      }
    }
    return m;
  }

  static Object metadata() throws Exception {
    String t = P + "_meta";
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("")) {
      exec(c, "drop table if exists " + t + ", " + t + "_child");
      exec(c, "drop view if exists " + t + "_view");
      exec(c, "create table " + t + " (id bigint primary key, name varchar(40) not null, score numeric(8,2), tags text[])");
      exec(c, "create table " + t + "_child (pid bigint references " + t + "(id), note text)");
      exec(c, "create view " + t + "_view as select id, name from " + t);
      exec(c, "comment on table " + t + " is 'drv meta table'");
      try {
        DatabaseMetaData md = c.getMetaData();
        m.put("product", md.getDatabaseProductName());
        m.put("major", md.getDatabaseMajorVersion());
        List<Object> tables = new ArrayList<>();
        try (ResultSet rs = md.getTables(null, "public", P + "\\_meta%", new String[] {"TABLE", "VIEW"})) {
          while (rs.next()) tables.add(Arrays.asList(rs.getString("TABLE_NAME"), rs.getString("TABLE_TYPE"), rs.getString("REMARKS")));
        }
        m.put("tables", tables);
        List<Object> cols = new ArrayList<>();
        try (ResultSet rs = md.getColumns(null, "public", t, "%")) {
          while (rs.next()) cols.add(Arrays.asList(rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME"), rs.getInt("COLUMN_SIZE"), rs.getString("IS_NULLABLE")));
        }
        m.put("columns", cols);
        List<Object> pks = new ArrayList<>();
        try (ResultSet rs = md.getPrimaryKeys(null, "public", t)) { while (rs.next()) pks.add(rs.getString("COLUMN_NAME")); }
        m.put("pks", pks);
        List<Object> fks = new ArrayList<>();
        try (ResultSet rs = md.getImportedKeys(null, "public", t + "_child")) { while (rs.next()) fks.add(Arrays.asList(rs.getString("PKTABLE_NAME"), rs.getString("FKCOLUMN_NAME"))); }
        m.put("fks", fks);
        try (PreparedStatement ps = c.prepareStatement("select id, name, score from " + t + " where id = ?")) {
          ResultSetMetaData rmd = ps.getMetaData();
          List<Object> rcols = new ArrayList<>();
          for (int i = 1; i <= rmd.getColumnCount(); i++) rcols.add(Arrays.asList(rmd.getColumnName(i), rmd.getColumnTypeName(i), rmd.getTableName(i), rmd.isNullable(i)));
          m.put("rs_meta", rcols);
          ParameterMetaData pmd = ps.getParameterMetaData();
          m.put("param_meta", Arrays.asList(pmd.getParameterCount(), pmd.getParameterTypeName(1)));
        }
      } finally {
        exec(c, "drop view if exists " + t + "_view");
        exec(c, "drop table if exists " + t + "_child, " + t);
      }
    }
    return m;
  }

  static Object copyAndNotify() throws Exception {
    String t = P + "_copy";
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect(""); Connection other = connect("")) {
      exec(c, "drop table if exists " + t);
      exec(c, "create table " + t + " (id int, v text)");
      try {
        CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 10000; i++) sb.append(i).append('\t').append("row ").append(i).append('\n');
        m.put("copied_in", cm.copyIn("copy " + t + " from stdin", new StringReader(sb.toString())));
        java.io.StringWriter w = new java.io.StringWriter();
        m.put("copied_out", cm.copyOut("copy (select * from " + t + " order by id) to stdout", w));
        m.put("roundtrip_equal", w.toString().equals(sb.toString()));
      } finally {
        exec(c, "drop table if exists " + t);
      }
      String chan = P + "_chan";
      exec(c, "listen " + chan);
      exec(other, "notify " + chan + ", 'jdbc payload'");
      try (PreparedStatement ps = other.prepareStatement("select pg_notify(?, ?)")) {
        ps.setString(1, chan);
        ps.setString(2, "second");
        ps.execute();
      }
      int otherPid = ((Number) scalar(other, "select pg_backend_pid()")).intValue();
      List<Object> got = new ArrayList<>();
      long deadline = System.currentTimeMillis() + 5000;
      while (got.size() < 2 && System.currentTimeMillis() < deadline) {
        PGNotification[] ns = c.unwrap(PGConnection.class).getNotifications(500);
        if (ns != null) for (PGNotification n : ns) got.add(Arrays.asList(n.getName(), n.getParameter(), n.getPID() == otherPid));
      }
      m.put("notifications", got);
    }
    return m;
  }

  /** Statement.cancel / setQueryTimeout send a CancelRequest to the host the driver connected to. */
  static Object cancel() throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("")) {
      try (Statement s = c.createStatement()) {
        s.setQueryTimeout(1);
        long t0 = System.currentTimeMillis();
        try {
          s.execute("select pg_sleep(15)");
          m.put("timeout", null);
        } catch (SQLException e) {
          m.put("timeout", e.getSQLState());
        }
        m.put("fast", System.currentTimeMillis() - t0 < 10000);
      }
      try (Statement s = c.createStatement()) {
        AtomicReference<Exception> bg = new AtomicReference<>();
        Thread th = new Thread(() -> {
          try { Thread.sleep(300); s.cancel(); } catch (Exception e) { bg.set(e); }
        });
        th.start();
        try {
          s.execute("select pg_sleep(15)");
          m.put("cancel", null);
        } catch (SQLException e) {
          m.put("cancel", e.getSQLState());
        }
        th.join();
        m.put("cancel_thread_error", bg.get() == null ? null : bg.get().toString());
      }
      m.put("usable", scalar(c, "select 'after cancel'"));
    }
    return m;
  }

  // ---- JSON output ----

  static void json(StringBuilder sb, Object o) {
    if (o == null) sb.append("null");
    else if (o instanceof Boolean || o instanceof Integer || o instanceof Long || o instanceof Short) sb.append(o);
    else if (o instanceof Number) {
      double d = ((Number) o).doubleValue();
      if (o instanceof java.math.BigDecimal) sb.append('"').append(o).append('"');
      else if (Double.isFinite(d)) sb.append(d);
      else sb.append('"').append(d).append('"');
    } else if (o instanceof Map) {
      sb.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
        if (!first) sb.append(',');
        first = false;
        json(sb, String.valueOf(e.getKey()));
        sb.append(':');
        json(sb, e.getValue());
      }
      sb.append('}');
    } else if (o instanceof Collection) {
      sb.append('[');
      boolean first = true;
      for (Object x : (Collection<?>) o) {
        if (!first) sb.append(',');
        first = false;
        json(sb, x);
      }
      sb.append(']');
    } else if (o instanceof java.sql.Array) {
      try { json(sb, Arrays.asList((Object[]) ((java.sql.Array) o).getArray())); } catch (SQLException e) { json(sb, e.toString()); }
    } else {
      String s = String.valueOf(o);
      sb.append('"');
      for (char ch : s.toCharArray()) {
        switch (ch) {
          case '"': sb.append("\\\""); break;
          case '\\': sb.append("\\\\"); break;
          case '\n': sb.append("\\n"); break;
          case '\r': sb.append("\\r"); break;
          case '\t': sb.append("\\t"); break;
          default:
            if (ch < 0x20) sb.append(String.format("\\u%04x", (int) ch));
            else sb.append(ch);
        }
      }
      sb.append('"');
    }
  }

  public static void main(String[] args) throws Exception {
    baseUrl = args[0];
    user = args[1];
    password = args[2];
    P = args[3];
    Map<String, Scenario> scenarios = new LinkedHashMap<>();
    scenarios.put("prepare_threshold", JdbcDriver::prepareThreshold);
    scenarios.put("batch", JdbcDriver::batch);
    scenarios.put("fetch_size", JdbcDriver::fetchSize);
    scenarios.put("begin_and_set", JdbcDriver::beginAndSet);
    scenarios.put("generated_keys", JdbcDriver::generatedKeys);
    scenarios.put("metadata", JdbcDriver::metadata);
    scenarios.put("copy_and_notify", JdbcDriver::copyAndNotify);
    scenarios.put("cancel", JdbcDriver::cancel);
    Map<String, Object> out = new TreeMap<>();
    for (Map.Entry<String, Scenario> e : scenarios.entrySet()) {
      try {
        out.put(e.getKey(), e.getValue().run());
      } catch (Exception ex) {
        Map<String, Object> f = new LinkedHashMap<>();
        f.put("exception", ex.toString());
        java.io.StringWriter sw = new java.io.StringWriter();
        ex.printStackTrace(new java.io.PrintWriter(sw));
        f.put("trace", sw.toString());
        out.put(e.getKey(), f);
      }
    }
    StringBuilder sb = new StringBuilder();
    json(sb, out);
    System.out.println(sb);
  }
}
