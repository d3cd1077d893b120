"""Every task setter: retry, resources, accelerators, env, display name, caching."""

from stepwell import dsl


@dsl.component
def step(x: int) -> int:
    return x


@dsl.pipeline
def task_setters(x: int = 1):
    a = step(x=x)
    a.set_retry(
        num_retries=3, backoff_duration="10s", backoff_factor=1.5, backoff_max_duration="60s"
    )
    a.set_cpu_limit("2").set_cpu_request("500m").set_memory_limit("4G").set_memory_request("1Gi")
    a.set_display_name("Step A").set_env_variable("MODE", "fast").set_env_variable("LEVEL", "3")
    b = step(x=a.output)
    b.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
    b.set_retry(2)
    b.set_caching_options(False)
    c = step(x=2).after(b)
    c.set_caching_options(True, cache_key="my-key")
    c.set_memory_limit("512M").set_cpu_limit("0.5")


TARGET = task_setters
