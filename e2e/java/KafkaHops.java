import io.opentelemetry.api.baggage.Baggage;
import io.opentelemetry.context.Scope;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Java Kafka hops for the interop tests, run under the OpenTelemetry Java agent: one JVM per
 * test module (starting one costs seconds), taking commands on stdin, one a line, each run in a
 * thread of its own. No tracing code: the agent does it all; the OpenTelemetry API is used only
 * to set and read baggage, as a service's own code would.
 *
 * <pre>
 * produce BOOTSTRAP TOPIC COUNT TENANT
 *     send COUNT records with baggage tenant=TENANT; prints "sent TOPIC COUNT"
 * relay BOOTSTRAP SOURCE TARGET|- GROUP COUNT plain|forward
 *     consume COUNT records, printing "got SOURCE OFFSET tenant=..." for each, and send each on
 *     to TARGET while handling it; "forward" also copies the record's headers (those of the
 *     trace context aside), as a relay that keeps headers does. Prints "ready SOURCE" once it
 *     has partitions and "relayed SOURCE COUNT" at the end.
 * </pre>
 */
public final class KafkaHops {
  private static final Set<String> CONTEXT_HEADERS = Set.of("traceparent", "tracestate", "baggage");

  public static void main(String[] args) throws Exception {
    BufferedReader commands =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    say("started");
    for (String line = commands.readLine(); line != null; line = commands.readLine()) {
      String job = line.trim();
      String[] words = job.split(" ");
      Runnable run = "produce".equals(words[0]) ? () -> produce(words) : () -> relay(words);
      new Thread(
              () -> {
                try {
                  run.run();
                } catch (RuntimeException e) {
                  say("failed " + job + ": " + e);
                }
              })
          .start();
    }
  }

  private static void produce(String[] words) {
    String topic = words[2];
    int count = Integer.parseInt(words[3]);
    try (KafkaProducer<byte[], byte[]> producer = producer(words[1]);
        Scope baggage = Baggage.builder().put("tenant", words[4]).build().makeCurrent()) {
      for (int i = 0; i < count; i++) {
        byte[] key = ("java-" + i).getBytes(StandardCharsets.UTF_8);
        producer.send(new ProducerRecord<>(topic, key, key)).get();
      }
      say("sent " + topic + " " + count);
    } catch (Exception e) {
      throw new RuntimeException(e);
    }
  }

  private static void relay(String[] words) {
    String source = words[2];
    String target = words[3];
    int count = Integer.parseInt(words[5]);
    boolean forward = "forward".equals(words[6]);
    Properties config = new Properties();
    config.put("bootstrap.servers", words[1]);
    config.put("group.id", words[4]);
    config.put("auto.offset.reset", "earliest");
    config.put("key.deserializer", ByteArrayDeserializer.class.getName());
    config.put("value.deserializer", ByteArrayDeserializer.class.getName());
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config);
        KafkaProducer<byte[], byte[]> producer = producer(words[1])) {
      consumer.subscribe(List.of(source), new Ready(source));
      int handled = 0;
      while (handled < count) {
        // The agent makes each record's process span current while the loop body runs.
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(100))) {
          say("got " + source + " " + record.offset() + " tenant="
              + Baggage.current().getEntryValue("tenant"));
          if (!"-".equals(target)) {
            ProducerRecord<byte[], byte[]> out =
                new ProducerRecord<>(target, record.key(), record.value());
            if (forward) {
              for (Header header : record.headers()) {
                if (!CONTEXT_HEADERS.contains(header.key())) {
                  out.headers().add(header);
                }
              }
            }
            producer.send(out).get();
          }
          handled++;
        }
      }
      consumer.commitSync();
      say("relayed " + source + " " + handled);
    } catch (Exception e) {
      throw new RuntimeException(e);
    }
  }

  private static KafkaProducer<byte[], byte[]> producer(String bootstrap) {
    Properties config = new Properties();
    config.put("bootstrap.servers", bootstrap);
    config.put("key.serializer", ByteArraySerializer.class.getName());
    config.put("value.serializer", ByteArraySerializer.class.getName());
    return new KafkaProducer<>(config);
  }

  private static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }

  private static final class Ready implements ConsumerRebalanceListener {
    private final String source;

    Ready(String source) {
      this.source = source;
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      if (!partitions.isEmpty()) {
        say("ready " + source);
      }
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}
  }
}
