// Sample app: runs an exported keras_pkkd model (assets/) once on one image with AdderDelegate
// and prints the top-1 class and the latency.
plugins {
    id("com.android.application")
}

// gradle.properties: pkkd.runtime=litert (com.google.ai.edge.litert:litert) or
// pkkd.runtime=tflite (org.tensorflow:tensorflow-lite); -Ppkkd.runtime=... overrides it.
val runtime: String = providers.gradleProperty("pkkd.runtime").getOrElse("litert")
val litertVersion: String = providers.gradleProperty("pkkd.litertVersion").getOrElse("1.4.0")
val tfliteVersion: String = providers.gradleProperty("pkkd.tfliteVersion").getOrElse("2.16.1")

android {
    namespace = "io.github.keraspkkd.sample"
    compileSdk = 35
    // The NDK that strips the library's debug symbols when the app is packaged.
    ndkVersion = providers.gradleProperty("pkkd.ndkVersion").getOrElse("27.2.12479018")

    defaultConfig {
        applicationId = "io.github.keraspkkd.sample"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "1.0"
        ndk {
            abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    // The model is memory-mapped from the APK: it must be stored uncompressed.
    androidResources {
        noCompress += listOf("tflite")
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }
}

dependencies {
    implementation(project(":adder"))
    when (runtime) {
        "litert" -> implementation("com.google.ai.edge.litert:litert:$litertVersion")
        "tflite" -> implementation("org.tensorflow:tensorflow-lite:$tfliteVersion")
        else -> throw GradleException("pkkd.runtime must be 'litert' or 'tflite', got '$runtime'")
    }
}
