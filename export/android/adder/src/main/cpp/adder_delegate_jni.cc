// JNI glue of io.github.keraspkkd.adder.AdderDelegate: creates and destroys the AdderConv2D
// delegate of export/tflite/adder_delegate.cc. The Java object hands the TfLiteDelegate* to
// the interpreter as its native handle (org.tensorflow.lite.Delegate.getNativeHandle()); the
// Java TFLite / LiteRT runtime casts it back to a TfLiteDelegate* (TfLiteOpaqueDelegate*, the
// same pointer) and applies it when the interpreter is built.
#include <jni.h>

#include <cstdint>
#include <new>

extern "C" {
struct TfLiteDelegate;
// export/tflite/adder_delegate.cc
TfLiteDelegate* pkkd_adder_delegate_create(int num_threads);
void pkkd_adder_delegate_destroy(TfLiteDelegate* delegate);
const char* pkkd_adder_delegate_isa();
}

namespace {

void Throw(JNIEnv* env, const char* class_name, const char* message) {
  jclass cls = env->FindClass(class_name);
  if (cls != nullptr) env->ThrowNew(cls, message);
}

}  // namespace

extern "C" {

// num_threads <= 0: the interpreter's thread count (Interpreter.Options.setNumThreads).
JNIEXPORT jlong JNICALL Java_io_github_keraspkkd_adder_AdderDelegate_nativeCreate(
    JNIEnv* env, jclass, jint num_threads) {
  try {
    TfLiteDelegate* delegate = pkkd_adder_delegate_create(static_cast<int>(num_threads));
    return static_cast<jlong>(reinterpret_cast<intptr_t>(delegate));
  } catch (const std::bad_alloc&) {
    Throw(env, "java/lang/OutOfMemoryError", "AdderDelegate: out of native memory");
  } catch (...) {
    Throw(env, "java/lang/IllegalStateException", "AdderDelegate: native creation failed");
  }
  return 0;
}

JNIEXPORT void JNICALL Java_io_github_keraspkkd_adder_AdderDelegate_nativeDestroy(JNIEnv*, jclass,
                                                                                 jlong handle) {
  if (handle == 0) return;
  pkkd_adder_delegate_destroy(
      reinterpret_cast<TfLiteDelegate*>(static_cast<intptr_t>(handle)));
}

// "neon", "avx512", "avx2" or "scalar": the compute core's version on this CPU.
JNIEXPORT jstring JNICALL Java_io_github_keraspkkd_adder_AdderDelegate_nativeIsa(JNIEnv* env,
                                                                               jclass) {
  return env->NewStringUTF(pkkd_adder_delegate_isa());
}

}  // extern "C"
