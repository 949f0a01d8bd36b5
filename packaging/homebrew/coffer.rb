# Homebrew formula for coffer, built from source. This is a template: packaging/build.sh
# writes dist/coffer.rb with the version, the source tarball's URL (COFFER_SOURCE_URL; by
# default the local dist/coffer-VERSION.tar.gz) and its SHA-256 filled in. Then:
#   brew install --formula ./dist/coffer.rb
class Coffer < Formula
  desc "Docker credential helper with an encrypted vault behind it"
  url "@URL@"
  version "@VERSION@"
  sha256 "@SHA256@"
  license any_of: ["MIT", "Apache-2.0"]

  depends_on "rust" => :build

  def install
    # The helper without the clouds' SDKs, as on every platform (scripts/build-release).
    system "scripts/build-release"
    bin.install "target/release/coffer", "target/release/docker-credential-coffer"
    # Man pages and completions come from the built program's own clap definitions.
    system bin/"coffer", "generate", "man", buildpath/"man"
    system bin/"coffer", "generate", "completions", buildpath/"completions"
    man1.install Dir[buildpath/"man/*.1"]
    %w[coffer docker-credential-coffer].each do |program|
      bash_completion.install buildpath/"completions/#{program}.bash" => program
      zsh_completion.install buildpath/"completions/_#{program}"
      fish_completion.install buildpath/"completions/#{program}.fish"
    end
  end

  def caveats
    <<~EOS
      To make docker use coffer, run as yourself (it keeps a backup of config.json):
        coffer setup docker
      Before uninstalling, put docker's previous setting back:
        coffer setup --undo docker
    EOS
  end

  test do
    assert_equal "docker-credential-coffer (coffer) #{version}\n",
                 shell_output("#{bin}/docker-credential-coffer version")
    ENV["COFFER_HOME"] = testpath/"coffer"
    assert_equal "{}\n", pipe_output("#{bin}/docker-credential-coffer list", "unused")
  end
end
