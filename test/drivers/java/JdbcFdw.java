// PostgreSQL JDBC over Redis foreign tables (or, for comparison, real tables holding the same rows).
//   java -cp /usr/share/java/postgresql.jar JdbcFdw.java <jdbc-url> <user> <password> <hash-table> <list-table>
// Prints one JSON document; the test compares the foreign-table run with the real-table run.

import java.sql.*;
import java.util.*;

public class JdbcFdw {
  static String url, user, password, H, L;

  static Connection connect(String extra) throws SQLException {
    Properties p = new Properties();
    p.setProperty("user", user);
    p.setProperty("password", password);
    p.setProperty("connectTimeout", "10");
    p.setProperty("socketTimeout", "60");
    return DriverManager.getConnection(url + (extra.isEmpty() ? "" : "?" + extra), p);
  }

  static Object threshold() throws Exception {
    List<Object> out = new ArrayList<>();
    try (Connection c = connect("prepareThreshold=1"); PreparedStatement ps = c.prepareStatement("select key, value from " + H + " where key = ?")) {
      for (int i = 0; i < 10; i++) {
        ps.setString(1, String.format("f%03d", i));
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) out.add(Arrays.asList(rs.getString(1), rs.getString(2)));
        }
      }
    }
    return out;
  }

  static Object binary() throws Exception {
    List<Object> out = new ArrayList<>();
    try (Connection c = connect("prepareThreshold=1"); PreparedStatement ps = c.prepareStatement("select value::int as v, length(key)::int as n, value::float8 / 2 as half from " + H + " where key = ?")) {
      for (int i = 0; i < 5; i++) {
        ps.setString(1, String.format("f%03d", 100 + i));
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) out.add(Arrays.asList(rs.getInt(1), rs.getInt(2), rs.getDouble(3)));
          ResultSetMetaData md = rs.getMetaData();
          if (i == 4) out.add(Arrays.asList(md.getColumnTypeName(1), md.getColumnTypeName(2), md.getColumnTypeName(3)));
        }
      }
    }
    return out;
  }

  static Object fetchSize() throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("")) {
      c.setAutoCommit(false);
      try (PreparedStatement ps = c.prepareStatement("select element from " + L + " where element >= ? order by element")) {
        ps.setFetchSize(100);
        for (int rep = 0; rep < 6; rep++) {
          ps.setString(1, "e0" + rep + "00");
          int n = 0;
          String first = null, last = null;
          try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) { if (first == null) first = rs.getString(1); last = rs.getString(1); n++; }
          }
          m.put("rep" + rep, Arrays.asList(n, first, last));
        }
      }
      c.commit();
    }
    return m;
  }

  static Object transaction() throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    try (Connection c = connect("")) {
      c.setAutoCommit(false);
      try (Statement s = c.createStatement()) {
        s.execute("SET LOCAL work_mem = '8MB'");
        try (ResultSet rs = s.executeQuery("select count(*) from " + H)) { rs.next(); m.put("count", rs.getInt(1)); }
        try { s.executeQuery("select 1/0 from " + L); } catch (SQLException e) { m.put("err", e.getSQLState()); }
        try { s.executeQuery("select 1"); } catch (SQLException e) { m.put("aborted", e.getSQLState()); }
      }
      c.rollback();
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select value from " + H + " where key = 'f050'")) {
        rs.next();
        m.put("after", rs.getString(1));
      }
      c.commit();
    }
    return m;
  }

  static String q(Object o) {
    if (o == null) return "null";
    if (o instanceof Number || o instanceof Boolean) return o.toString();
    if (o instanceof Map) {
      StringBuilder sb = new StringBuilder("{");
      for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
        if (sb.length() > 1) sb.append(',');
        sb.append(q(String.valueOf(e.getKey()))).append(':').append(q(e.getValue()));
      }
      return sb.append('}').toString();
    }
    if (o instanceof Collection) {
      StringBuilder sb = new StringBuilder("[");
      for (Object x : (Collection<?>) o) {
        if (sb.length() > 1) sb.append(',');
        sb.append(q(x));
      }
      return sb.append(']').toString();
    }
    StringBuilder sb = new StringBuilder("\"");
    for (char ch : o.toString().toCharArray()) {
      if (ch == '"' || ch == '\\') sb.append('\\').append(ch);
      else if (ch < 0x20) sb.append(String.format("\\u%04x", (int) ch));
      else sb.append(ch);
    }
    return sb.append('"').toString();
  }

  interface Scenario { Object run() throws Exception; }

  public static void main(String[] args) {
    url = args[0]; user = args[1]; password = args[2]; H = args[3]; L = args[4];
    Map<String, Scenario> s = new LinkedHashMap<>();
    s.put("threshold", JdbcFdw::threshold);
    s.put("binary", JdbcFdw::binary);
    s.put("fetch_size", JdbcFdw::fetchSize);
    s.put("transaction", JdbcFdw::transaction);
    Map<String, Object> out = new TreeMap<>();
    for (Map.Entry<String, Scenario> e : s.entrySet()) {
      try {
        out.put(e.getKey(), e.getValue().run());
      } catch (Exception ex) {
        java.io.StringWriter sw = new java.io.StringWriter();
        ex.printStackTrace(new java.io.PrintWriter(sw));
        out.put(e.getKey(), Map.of("exception", ex.toString(), "trace", sw.toString()));
      }
    }
    System.out.println(q(out));
  }
}
