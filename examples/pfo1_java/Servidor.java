// PFO 1 en Java: un pool fijo de hilos (Executors.newFixedThreadPool), una línea por mensaje,
// SQLite por JDBC (xerial), commit antes de responder.
import java.io.*;
import java.net.*;
import java.nio.ByteBuffer;
import java.nio.charset.*;
import java.sql.*;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.concurrent.*;

public class Servidor {
    static final int PUERTO = 5000;
    static final int MAXIMO = 4096;
    static final DateTimeFormatter FORMATO = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");
    static Connection base;
    static volatile boolean corriendo = true;

    public static void main(String[] args) throws Exception {
        try {
            base = DriverManager.getConnection("jdbc:sqlite:chat.db");
            try (Statement st = base.createStatement()) {
                st.execute("PRAGMA busy_timeout = 5000");
                st.execute("CREATE TABLE IF NOT EXISTS mensajes (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                        + " contenido TEXT NOT NULL, fecha_envio TEXT NOT NULL, ip_cliente TEXT NOT NULL)");
            }
        } catch (SQLException e) {
            System.out.println("Error: no se pudo abrir la base de datos: " + e.getMessage());
            System.exit(1);
        }
        ServerSocket servidor = new ServerSocket();
        servidor.setReuseAddress(true);
        try {
            servidor.bind(new InetSocketAddress("127.0.0.1", PUERTO), 1024);
        } catch (BindException e) {
            System.out.println("Error: el puerto " + PUERTO + " ya está en uso");
            System.exit(1);
        }
        ExecutorService pool = Executors.newFixedThreadPool(32);
        CountDownLatch fin = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            corriendo = false;
            try { servidor.close(); } catch (IOException e) { }
            pool.shutdownNow();
            try { pool.awaitTermination(3, TimeUnit.SECONDS); } catch (InterruptedException e) { }
            synchronized (Servidor.class) {
                try { base.close(); } catch (SQLException e) { }
            }
            System.out.println("Servidor detenido");
            try { fin.await(3, TimeUnit.SECONDS); } catch (InterruptedException e) { }
        }));
        System.out.println("Servidor escuchando en 127.0.0.1:" + PUERTO);
        try {
            while (corriendo) {
                Socket cliente = servidor.accept();
                pool.execute(() -> atender(cliente));
            }
        } catch (IOException e) {
            if (corriendo) System.out.println("Error al aceptar: " + e.getMessage());
        } finally {
            fin.countDown();
        }
    }

    static synchronized String guardar(String contenido, String ip) throws SQLException {
        if (!corriendo) throw new SQLException("el servidor se está deteniendo");
        String fecha = LocalDateTime.now().format(FORMATO);
        try (PreparedStatement ps = base.prepareStatement(
                "INSERT INTO mensajes (contenido, fecha_envio, ip_cliente) VALUES (?, ?, ?)")) {
            ps.setString(1, contenido);
            ps.setString(2, fecha);
            ps.setString(3, ip);
            ps.executeUpdate();  // autocommit: la fila está guardada al volver
        }
        return fecha;
    }

    // Lee una línea terminada en '\n' (bytes); null si el cliente cerró (una línea a medias no cuenta).
    static byte[] leerLinea(InputStream in, boolean[] larga) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        larga[0] = false;
        int b;
        while ((b = in.read()) != -1) {
            if (b == '\n') return buf.toByteArray();
            if (buf.size() < MAXIMO) buf.write(b); else larga[0] = true;
        }
        return null;
    }

    static void atender(Socket cliente) {
        String ip = cliente.getInetAddress().getHostAddress();
        CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        try (Socket s = cliente;
             InputStream in = new BufferedInputStream(s.getInputStream());
             OutputStream out = s.getOutputStream()) {
            boolean[] larga = new boolean[1];
            byte[] linea;
            while ((linea = leerLinea(in, larga)) != null) {
                String respuesta;
                if (larga[0]) {
                    respuesta = "Error: mensaje demasiado largo";
                } else {
                    String texto;
                    try {
                        texto = utf8.decode(ByteBuffer.wrap(linea)).toString();
                    } catch (CharacterCodingException e) {
                        out.write("Error: el mensaje no es UTF-8 válido\n".getBytes(StandardCharsets.UTF_8));
                        continue;
                    }
                    if (texto.endsWith("\r")) texto = texto.substring(0, texto.length() - 1);
                    if (texto.equals("éxito")) {
                        out.write("Adiós\n".getBytes(StandardCharsets.UTF_8));
                        break;
                    }
                    if (texto.isBlank() || texto.indexOf('\0') >= 0) {
                        respuesta = "Error: mensaje vacío o con caracteres no permitidos";
                    } else {
                        try {
                            respuesta = "Mensaje recibido: " + guardar(texto, ip);
                        } catch (SQLException e) {
                            respuesta = "Error: no se pudo guardar el mensaje: " + e.getMessage().replace('\n', ' ');
                        }
                    }
                }
                out.write((respuesta + "\n").getBytes(StandardCharsets.UTF_8));
            }
        } catch (IOException e) {
            System.out.println("Cliente " + ip + " desconectado: " + e.getMessage());
        }
    }
}
