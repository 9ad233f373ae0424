"""The local stack: what runs the pipeline's infrastructure on this machine, apart from the
pipeline itself. The Kafka broker (``broker``: installed through ``pom.xml``, logging with
``log4j2.properties``, metrics by the JMX exporter's rules, ``jmx_exporter.yml``, a link to
the kafka role's own file), Prometheus, the Pushgateway and the node exporter
(``monitoring``), and the background processes with pid files that run them
(``processes``). ``stockpipe kafka`` and ``stockpipe monitoring`` use it; the pipeline's
modules do not."""
