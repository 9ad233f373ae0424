"""The local stack: what runs the pipeline's infrastructure on this machine, apart from the
pipeline itself. The Kafka broker (``broker``: installed through ``pom.xml``, configured by
``server.properties.j2``, its listeners, and the kafka role's storage and tuning, logging and
metrics rules: ``broker.properties.j2``, ``log4j2.properties.j2`` and ``jmx_exporter.yml`` are
links to the role's own files), Prometheus, the Pushgateway and the node exporter
(``monitoring``), and the background processes with pid files that run them
(``processes``). ``stockpipe kafka`` and ``stockpipe monitoring`` use it; the pipeline's
modules do not."""
