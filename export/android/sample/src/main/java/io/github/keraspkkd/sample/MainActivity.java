package io.github.keraspkkd.sample;

import android.app.Activity;
import android.content.res.AssetFileDescriptor;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.os.Bundle;
import android.util.Log;
import android.widget.ScrollView;
import android.widget.TextView;
import io.github.keraspkkd.adder.AdderDelegate;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.Arrays;
import java.util.Locale;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.tensorflow.lite.Interpreter;

/**
 * Runs an exported keras_pkkd model once on one image, with the AdderConv2D op brought by
 * {@link AdderDelegate}, and shows (and logs, tag "PkkdAdderSample") the top-1 class and the
 * latency. Its assets come from export/android/prepare_assets.py: the .tflite, image.png and
 * model_info.json (normalization, class names, label, and the Python runtime's result for the
 * same image, which the app compares its own with).
 */
public class MainActivity extends Activity {
  private static final String TAG = "PkkdAdderSample";
  private static final String INFO_ASSET = "model_info.json";
  private static final String DEFAULT_MODEL = "resnet20_ann.tflite";
  private static final String DEFAULT_IMAGE = "image.png";
  private static final int NUM_THREADS = 2;
  private static final int TIMED_RUNS = 20;
  // CIFAR-10's normalization and classes (keras_pkkd/data/augment.py), when there is no
  // model_info.json.
  private static final float[] CIFAR10_MEAN = {0.4914f, 0.4822f, 0.4465f};
  private static final float[] CIFAR10_STD = {0.2470f, 0.2435f, 0.2616f};
  private static final String[] CIFAR10_CLASSES = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
  };

  private TextView text;

  @Override
  protected void onCreate(Bundle savedInstanceState) {
    super.onCreate(savedInstanceState);
    text = new TextView(this);
    text.setTextIsSelectable(true);
    int pad = (int) (16 * getResources().getDisplayMetrics().density);
    text.setPadding(pad, pad, pad, pad);
    ScrollView scroll = new ScrollView(this);
    scroll.addView(text);
    setContentView(scroll);
    text.setText("Running...");
    new Thread(
            () -> {
              String report;
              try {
                report = runOnce();
                Log.i(TAG, report);
              } catch (Exception | LinkageError e) {
                Log.e(TAG, "the sample failed", e);
                report = "Failed: " + e;
              }
              final String shown = report;
              runOnUiThread(() -> text.setText(shown));
            },
            "pkkd-adder-sample")
        .start();
  }

  private String runOnce() throws IOException, JSONException {
    JSONObject info = readInfo();
    String modelName = info != null ? info.optString("model", DEFAULT_MODEL) : DEFAULT_MODEL;
    String imageName = info != null ? info.optString("image", DEFAULT_IMAGE) : DEFAULT_IMAGE;
    float[] mean = info != null ? floats(info.getJSONArray("mean")) : CIFAR10_MEAN;
    float[] std = info != null ? floats(info.getJSONArray("std")) : CIFAR10_STD;
    String[] classes =
        info != null && info.has("class_names")
            ? strings(info.getJSONArray("class_names"))
            : CIFAR10_CLASSES;

    MappedByteBuffer model = mapAsset(modelName);
    StringBuilder report = new StringBuilder();
    report.append("model: ").append(modelName).append('\n');
    report.append("adder core: ").append(AdderDelegate.isa());
    report.append(", threads: ").append(NUM_THREADS).append('\n');

    // The delegate outlives the interpreter: the inner try closes the interpreter first.
    try (AdderDelegate adder = new AdderDelegate(NUM_THREADS)) {
      Interpreter.Options options =
          new Interpreter.Options().setNumThreads(NUM_THREADS).addDelegate(adder);
      try (Interpreter interpreter = new Interpreter(model, options)) {
        int[] shape = interpreter.getInputTensor(0).shape();
        if (shape.length != 4 || shape[3] != 3) {
          throw new IllegalStateException(
              "expected an NHWC RGB input, the model has " + Arrays.toString(shape));
        }
        if (shape[0] != 1) {
          interpreter.resizeInput(0, new int[] {1, shape[1], shape[2], 3});
          interpreter.allocateTensors();
        }
        ByteBuffer input = loadImage(imageName, shape[1], shape[2], mean, std);
        int[] outShape = interpreter.getOutputTensor(0).shape();
        int numClasses = outShape[outShape.length - 1];
        ByteBuffer output =
            ByteBuffer.allocateDirect(4 * numClasses).order(ByteOrder.nativeOrder());

        long t0 = System.nanoTime();
        interpreter.run(input, output);
        long firstNs = System.nanoTime() - t0;
        long[] times = new long[TIMED_RUNS];
        for (int i = 0; i < TIMED_RUNS; ++i) {
          input.rewind();
          output.rewind();
          long start = System.nanoTime();
          interpreter.run(input, output);
          times[i] = System.nanoTime() - start;
        }
        Arrays.sort(times);

        float[] logits = new float[numClasses];
        output.rewind();
        output.asFloatBuffer().get(logits);
        int top1 = argmax(logits);
        report.append(
            String.format(
                Locale.US,
                "top-1: %d (%s), logit %.4f\n",
                top1,
                top1 < classes.length ? classes[top1] : "?",
                logits[top1]));
        report.append(
            String.format(
                Locale.US,
                "latency: first run %.2f ms, then median %.2f ms, min %.2f ms over %d runs\n",
                firstNs / 1e6,
                times[TIMED_RUNS / 2] / 1e6,
                times[0] / 1e6,
                TIMED_RUNS));
        if (info != null) {
          compareWithPython(info, top1, logits, classes, report);
        }
      }
    }
    return report.toString();
  }

  /** The image's label and what the Python LiteRT runtime computed for it (prepare_assets.py). */
  private static void compareWithPython(
      JSONObject info, int top1, float[] logits, String[] classes, StringBuilder report)
      throws JSONException {
    if (info.has("label")) {
      int label = info.getInt("label");
      report.append("label: ").append(label);
      report.append(label < classes.length ? " (" + classes[label] + ")" : "").append('\n');
    }
    if (info.has("python_top1")) {
      int pyTop1 = info.getInt("python_top1");
      report.append("Python LiteRT top-1: ").append(pyTop1);
      report.append(pyTop1 == top1 ? " (same)" : " (DIFFERENT)").append('\n');
    }
    if (info.has("python_logits")) {
      float[] py = floats(info.getJSONArray("python_logits"));
      if (py.length == logits.length) {
        float maxDiff = 0f;
        float maxAbs = 0f;
        for (int i = 0; i < py.length; ++i) {
          maxDiff = Math.max(maxDiff, Math.abs(py[i] - logits[i]));
          maxAbs = Math.max(maxAbs, Math.abs(py[i]));
        }
        report.append(
            String.format(
                Locale.US, "max |logit - Python's|: %.3g (largest |logit| %.3g)\n", maxDiff, maxAbs));
      }
    }
  }

  private JSONObject readInfo() throws IOException, JSONException {
    try (InputStream in = getAssets().open(INFO_ASSET)) {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      byte[] chunk = new byte[8192];
      for (int n; (n = in.read(chunk)) > 0; ) {
        bytes.write(chunk, 0, n);
      }
      return new JSONObject(bytes.toString("UTF-8"));
    } catch (FileNotFoundException e) {
      Log.w(TAG, INFO_ASSET + " not in the assets: CIFAR-10 defaults");
      return null;
    }
  }

  /** The model, memory-mapped from the APK (stored uncompressed: see build.gradle.kts). */
  private MappedByteBuffer mapAsset(String name) throws IOException {
    AssetFileDescriptor fd;
    try {
      fd = getAssets().openFd(name);
    } catch (FileNotFoundException e) {
      throw new FileNotFoundException(
          name
              + " is not in the app's assets: run export/android/prepare_assets.py "
              + "(export/android/README.md)");
    }
    try (AssetFileDescriptor owned = fd;
        FileInputStream stream = new FileInputStream(owned.getFileDescriptor());
        FileChannel channel = stream.getChannel()) {
      return channel.map(
          FileChannel.MapMode.READ_ONLY, owned.getStartOffset(), owned.getDeclaredLength());
    }
  }

  /** [1, height, width, 3] float32, (pixel / 255 - mean) / std per channel, as in training. */
  private ByteBuffer loadImage(String name, int height, int width, float[] mean, float[] std)
      throws IOException {
    Bitmap bitmap;
    try (InputStream in = getAssets().open(name)) {
      BitmapFactory.Options decode = new BitmapFactory.Options();
      decode.inPreferredConfig = Bitmap.Config.ARGB_8888;
      bitmap = BitmapFactory.decodeStream(in, null, decode);
    }
    if (bitmap == null) {
      throw new IOException(name + ": not a decodable image");
    }
    if (bitmap.getWidth() != width || bitmap.getHeight() != height) {
      bitmap = Bitmap.createScaledBitmap(bitmap, width, height, true);
    }
    int[] pixels = new int[width * height];
    bitmap.getPixels(pixels, 0, width, 0, 0, width, height);
    ByteBuffer input = ByteBuffer.allocateDirect(4 * 3 * width * height);
    input.order(ByteOrder.nativeOrder());
    for (int p : pixels) {
      int[] rgb = {(p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff};
      for (int c = 0; c < 3; ++c) {
        input.putFloat((rgb[c] / 255f - mean[c]) / std[c]);
      }
    }
    input.rewind();
    return input;
  }

  private static int argmax(float[] v) {
    int best = 0;
    for (int i = 1; i < v.length; ++i) {
      if (v[i] > v[best]) {
        best = i;
      }
    }
    return best;
  }

  private static float[] floats(JSONArray a) throws JSONException {
    float[] v = new float[a.length()];
    for (int i = 0; i < v.length; ++i) {
      v[i] = (float) a.getDouble(i);
    }
    return v;
  }

  private static String[] strings(JSONArray a) throws JSONException {
    String[] v = new String[a.length()];
    for (int i = 0; i < v.length; ++i) {
      v[i] = a.getString(i);
    }
    return v;
  }
}
