"""On-device latency of TFLite models over adb with the TFLite benchmark_model tool."""
