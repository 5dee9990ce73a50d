import io.github.keraspkkd.adder.AdderDelegate;

/**
 * Runs io.github.keraspkkd.adder.AdderDelegate on a desktop JVM against the host build of
 * libpkkd_adder.so (check_host_build.sh, stage jvm): System.loadLibrary finds the library by
 * its name, the JNI functions bind with the right signatures, and create / close behave.
 * org.tensorflow.lite.Delegate comes from a stub (no TFLite runtime on the desktop).
 */
public final class AdderDelegateHostTest {
  private static int failures = 0;

  private static void check(boolean ok, String what) {
    System.out.println((ok ? "  ok   " : "  FAIL ") + what);
    if (!ok) {
      failures++;
    }
  }

  public static void main(String[] args) throws Exception {
    String isa = AdderDelegate.isa();
    check(
        isa.equals("avx512") || isa.equals("avx2") || isa.equals("neon") || isa.equals("scalar"),
        "isa() = " + isa);
    long first;
    try (AdderDelegate d = new AdderDelegate(2)) {
      first = d.getNativeHandle();
      check(first != 0, "getNativeHandle() != 0 (0x" + Long.toHexString(first) + ")");
      check(d.getNativeHandle() == first, "the handle is stable");
      org.tensorflow.lite.Delegate asDelegate = d;
      check(asDelegate.getNativeHandle() == first, "usable as org.tensorflow.lite.Delegate");
    }
    AdderDelegate closed = new AdderDelegate();
    closed.close();
    closed.close();  // idempotent
    try {
      closed.getNativeHandle();
      check(false, "getNativeHandle() after close() throws");
    } catch (IllegalStateException expected) {
      check(true, "getNativeHandle() after close() throws: " + expected.getMessage());
    }
    try {
      new AdderDelegate(-1);
      check(false, "new AdderDelegate(-1) throws");
    } catch (IllegalArgumentException expected) {
      check(true, "new AdderDelegate(-1) throws: " + expected.getMessage());
    }
    // Many create / close cycles: no crash, handles freed.
    for (int i = 0; i < 1000; i++) {
      new AdderDelegate(i % 4).close();
    }
    check(true, "1000 create / close cycles");
    System.out.println("AdderDelegateHostTest: " + (failures == 0 ? "passed" : failures + " failed"));
    System.exit(failures == 0 ? 0 : 1);
  }
}
