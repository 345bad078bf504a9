"""Real services to run the proxy against, shared by the tests and the benchmark: a redis-server on
a free port (`redis_server`), the fake OpenAI upstream (`fake_upstream`) and the real server
process (`server_process`). Neither `tests` nor `bench` is imported from here."""
