package io.github.keraspkkd.adder;

import org.tensorflow.lite.Delegate;

/**
 * Makes the {@code AdderConv2D} custom op of keras_pkkd models available to the TensorFlow Lite
 * / LiteRT Java {@code Interpreter}.
 *
 * <p>The stock Java interpreter cannot register a custom op, but it applies delegates: this one
 * claims every {@code AdderConv2D} node of the model and runs it with the project's native kernel
 * ({@code libpkkd_adder.so}, built from export/tflite and custom_ops/adder/cc/kernels); every
 * other op stays with the runtime (its builtin kernels, XNNPACK).
 *
 * <pre>{@code
 * try (AdderDelegate adder = new AdderDelegate(2)) {
 *   Interpreter.Options options = new Interpreter.Options().setNumThreads(2).addDelegate(adder);
 *   try (Interpreter interpreter = new Interpreter(modelBuffer, options)) {
 *     interpreter.run(input, output);
 *   }
 * }
 * }</pre>
 *
 * <p>The delegate must outlive every interpreter built with it: close the interpreter first (the
 * nesting above does). One delegate may serve several interpreters used one at a time; give
 * interpreters that run concurrently one delegate each (the delegate's thread pool is shared by
 * the interpreters that use it).
 *
 * <p>Works with runtimes that accept custom delegates: {@code org.tensorflow:tensorflow-lite} (up to
 * 2.16.x) and {@code com.google.ai.edge.litert:litert} 1.4.x. Google Play services' TFLite rejects
 * custom delegates. The native side checks the runtime's structure layout against the one it was
 * written for when the delegate is applied, and fails the interpreter's creation with a message
 * if they differ.
 */
public final class AdderDelegate implements Delegate, AutoCloseable {
  /** The native library (libpkkd_adder.so). */
  public static final String LIBRARY_NAME = "pkkd_adder";

  static {
    System.loadLibrary(LIBRARY_NAME);
  }

  private long nativeHandle;

  /** A delegate whose kernels use the interpreter's thread count. */
  public AdderDelegate() {
    this(0);
  }

  /**
   * @param numThreads threads of the adder kernels; 0 follows the interpreter's thread count
   *     ({@code Interpreter.Options.setNumThreads}; 1 when that is unset).
   */
  public AdderDelegate(int numThreads) {
    if (numThreads < 0) {
      throw new IllegalArgumentException("numThreads must be >= 0, got " + numThreads);
    }
    nativeHandle = nativeCreate(numThreads);
    if (nativeHandle == 0) {
      throw new IllegalStateException("AdderDelegate: the native delegate could not be created");
    }
  }

  /** The native {@code TfLiteDelegate*}. */
  @Override
  public synchronized long getNativeHandle() {
    if (nativeHandle == 0) {
      throw new IllegalStateException("AdderDelegate has been closed");
    }
    return nativeHandle;
  }

  /** Frees the native delegate. Call it after closing the interpreters that use it. */
  @Override
  public synchronized void close() {
    if (nativeHandle != 0) {
      nativeDestroy(nativeHandle);
      nativeHandle = 0;
    }
  }

  /**
   * The version of the compute core this CPU runs: "neon" (arm64-v8a), "avx512" or "avx2"
   * (x86_64), or "scalar".
   */
  public static String isa() {
    return nativeIsa();
  }

  private static native long nativeCreate(int numThreads);

  private static native void nativeDestroy(long handle);

  private static native String nativeIsa();
}
