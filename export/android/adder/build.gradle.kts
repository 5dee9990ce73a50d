// The Android library: io.github.keraspkkd.adder.AdderDelegate and libpkkd_adder.so, the latter
// built by the NDK with CMake (CMakeLists.txt) from the keras_pkkd sources in place.
plugins {
    id("com.android.library")
}

val tfliteVersion: String = providers.gradleProperty("pkkd.tfliteVersion").getOrElse("2.16.1")

android {
    namespace = "io.github.keraspkkd.adder"
    compileSdk = 35
    ndkVersion = providers.gradleProperty("pkkd.ndkVersion").getOrElse("27.2.12479018")

    defaultConfig {
        minSdk = 21
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64")
        }
        externalNativeBuild {
            cmake {
                // One C++ library per app may link the C++ runtime statically; ours exports
                // only C / JNI symbols, so its libc++ stays private.
                arguments += listOf("-DANDROID_STL=c++_static")
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("CMakeLists.txt")
            version = "3.22.1"
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }
}

dependencies {
    // Only the org.tensorflow.lite.Delegate interface, at compile time: the app picks the
    // runtime (org.tensorflow:tensorflow-lite or com.google.ai.edge.litert:litert, which keeps
    // the org.tensorflow.lite package), so the two never end up side by side.
    compileOnly("org.tensorflow:tensorflow-lite-api:$tfliteVersion")
}
